package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/internal/idptest"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// testClock is a clock that tests move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// protectedAPI is an upstream API that trusts only one provider's tokens:
// it answers /v1/me with the subject of a live token and 401 otherwise, and
// records the tokens it saw.
type protectedAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newProtectedAPI(t *testing.T, active func(string) (string, bool)) *protectedAPI {
	api := &protectedAPI{}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		api.mu.Lock()
		api.seen = append(api.seen, tok)
		api.mu.Unlock()
		sub, ok := active(tok)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "token not active at the provider", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"subject": sub})
	}))
	t.Cleanup(api.Close)
	return api
}

func (a *protectedAPI) tokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// writeConfig writes a config file with identity providers and upstreams
// and returns its path.
func writeConfig(t *testing.T, cfg map[string]any) string {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mcpd.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secretFile writes secret to a file of its own and returns its path.
func secretFile(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var providerHref = regexp.MustCompile(`href="([^"]*/login/idp/[^"]*)"`)

// idpAuthorize runs an authorization request through sign-in at the
// provider (following the login page's provider link, the provider's
// redirect and the callback) and consent, and returns the final page's
// response and body when it is not a redirect to the client, or the
// client's redirect URL.
func (b *browser) idpAuthorize(authURL string) (*url.URL, *http.Response, []byte) {
	b.t.Helper()
	issuer := strings.SplitN(authURL, "/authorize", 2)[0]
	resp, body := b.get(authURL)
	if m := providerHref.FindSubmatch(body); resp.StatusCode == http.StatusOK && m != nil {
		resp, body = b.get(html.UnescapeString(string(m[1])))
	}
	for step := 0; step < 10; step++ {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatalf("redirect without location: %v", err)
			}
			if strings.HasPrefix(loc.String(), issuer+"/") || !strings.HasPrefix(loc.Path, "/callback") {
				resp, body = b.get(loc.String()) // mcpd itself or the provider
				continue
			}
			return loc, nil, nil
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`value="allow"`)) {
			return nil, resp, body
		}
		f := parseForm(b.t, resp.Request.URL.String(), body)
		f.Fields.Set("action", "allow")
		resp, body = b.post(f.Action, f.Fields)
	}
	b.t.Fatalf("sign-in did not end: %s\n%s", resp.Status, body)
	return nil, nil, nil
}

// idpLogin gets tokens through sign-in at the provider and consent.
func idpLogin(t *testing.T, b *browser, issuer, clientID, redirect string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID: clientID, Scopes: scopes, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	loc, resp, body := b.idpAuthorize(cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	if loc == nil {
		t.Fatalf("sign-in ended at %s:\n%s", resp.Status, body)
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// apiCall calls the api_call tool and returns its result and tool error.
func apiCall(t *testing.T, cs *mcp.ClientSession, upstream, path string) (map[string]any, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "api_call", Arguments: map[string]any{"upstream": upstream, "method": "GET", "path": path}})
	if err != nil {
		t.Fatalf("api_call: %v", err)
	}
	if res.IsError {
		var msg strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				msg.WriteString(tc.Text)
			}
		}
		return nil, msg.String()
	}
	m, _ := res.StructuredContent.(map[string]any)
	return m, ""
}

// oidcServer starts mcpd with the stand-in provider p as "corp" and an
// upstream "corp-api" at api called as the user.
func oidcServer(t *testing.T, p *idptest.OIDC, api *protectedAPI, clock *testClock, provider map[string]any, args ...string) *testServer {
	t.Helper()
	prov := map[string]any{
		"name": "corp", "display_name": "Corp SSO", "type": "oidc", "issuer": p.URL,
		"client_id": p.ClientID, "client_secret_file": secretFile(t, p.ClientSecret),
		"scopes": []string{"openid", "email", "offline_access"}, "create_users": true,
	}
	for k, v := range provider {
		prov[k] = v
	}
	cfg := map[string]any{
		"identity_providers": []any{prov},
		"upstreams": []any{map[string]any{
			"name": "corp-api", "base_url": api.URL, "path_prefixes": []string{"/v1"},
			"auth": map[string]any{"type": "user", "identity_provider": "corp"},
		}},
	}
	return startServerEnv(t, func(e *cliEnv) { e.now = clock.Now }, append([]string{"--config", writeConfig(t, cfg)}, args...)...)
}

func TestIdentityProviderSignInAndAPICallAsTheUser(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada"})
	p.SetFaults(idptest.Faults{IssParameter: true}) // answers carry iss (RFC 9207), as Keycloak's do
	api := newProtectedAPI(t, p.ActiveSubject)
	clock := &testClock{}
	ts := oidcServer(t, p, api, clock, nil)
	clientID, redirect := publicClient(t, ts.URL, "IdP Test Client")
	b := newBrowser(t)
	tok := idpLogin(t, b, ts.URL, clientID, redirect, "notes:read", "api:call")
	cs := connectMCP(t, ts.URL, tok.AccessToken)

	t.Run("whoami shows the user created from the verified email", func(t *testing.T) {
		if got := whoami(t, cs)["user"]; got != "ada@example.com" {
			t.Errorf("whoami user = %v; want ada@example.com", got)
		}
	})

	t.Run("user list shows the email and the linked provider, through the socket and offline alike", func(t *testing.T) {
		out := mustMcpd(t, "", "user", "list", "--data", ts.Data)
		if !regexp.MustCompile(`(?m)^ada@example\.com\s+ada@example\.com\s+corp\s`).MatchString(out) {
			t.Errorf("user list:\n%s", out)
		}
		var users []userView
		if err := json.Unmarshal([]byte(mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)), &users); err != nil {
			t.Fatal(err)
		}
		var ada *userView
		for i := range users {
			if users[i].Name == "ada@example.com" {
				ada = &users[i]
			}
		}
		if ada == nil || len(ada.Identities) != 1 || ada.Identities[0].Provider != "corp" || ada.Identities[0].Issuer != p.URL || ada.Identities[0].Subject != "ada-1" {
			t.Errorf("user list --json = %+v", users)
		}
	})

	var first string
	t.Run("api_call reaches the API as the user with the provider's token, not mcpd's", func(t *testing.T) {
		out, msg := apiCall(t, cs, "corp-api", "/v1/me")
		if msg != "" || out["status"] != float64(200) || !strings.Contains(fmt.Sprint(out["body"]), `"subject":"ada-1"`) {
			t.Fatalf("api_call = %v, %q", out, msg)
		}
		seen := api.tokens()
		first = seen[len(seen)-1]
		if first == tok.AccessToken || first == "" {
			t.Errorf("the API saw %q; want the upstream token, never mcpd's", first)
		}
		if p.Stats().Refreshes != 0 {
			t.Error("a live token was refreshed")
		}
	})

	t.Run("after the upstream token expires, the call succeeds with a refreshed token", func(t *testing.T) {
		p.ExpireAccessTokens()
		clock.Advance(2 * time.Hour)
		out, msg := apiCall(t, cs, "corp-api", "/v1/me")
		if msg != "" || out["status"] != float64(200) {
			t.Fatalf("api_call = %v, %q", out, msg)
		}
		seen := api.tokens()
		if last := seen[len(seen)-1]; last == first {
			t.Error("the API saw the expired token again")
		}
		if n := p.Stats().Refreshes; n != 1 {
			t.Errorf("%d refreshes; want 1", n)
		}
	})

	t.Run("concurrent calls with an expired token refresh once", func(t *testing.T) {
		p.ExpireAccessTokens()
		clock.Advance(2 * time.Hour)
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for range 8 {
			wg.Go(func() {
				if out, msg := apiCall(t, cs, "corp-api", "/v1/me"); msg != "" || out["status"] != float64(200) {
					errs <- fmt.Sprintf("%v %q", out, msg)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if n := p.Stats().Refreshes; n != 2 {
			t.Errorf("%d refreshes in all; want 2 (one more)", n)
		}
	})

	t.Run("neither mcpd's client view nor the database file holds the upstream tokens", func(t *testing.T) {
		show := mustMcpd(t, "", "client", "show", clientID, "--json", "--data", ts.Data)
		for _, up := range api.tokens() {
			if strings.Contains(show, up) {
				t.Errorf("client show holds an upstream token")
			}
		}
		raw, err := os.ReadFile(filepath.Join(ts.Data, "mcpd.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, up := range api.tokens() {
			if bytes.Contains(raw, []byte(up)) {
				t.Errorf("the database holds an upstream access token in plain text")
			}
		}
		if bytes.Contains(raw, []byte(p.ClientSecret)) {
			t.Errorf("the database holds the provider's client secret")
		}
		if strings.Contains(ts.Stderr.String(), first) || strings.Contains(ts.Stderr.String(), p.ClientSecret) {
			t.Errorf("the log holds a token or the client secret")
		}
	})

	for _, fault := range []idptest.Faults{
		{TokenStatus: http.StatusTooManyRequests, TokenErrorCode: "slow_down"},
		{TokenStatus: http.StatusUnauthorized, TokenErrorCode: "invalid_client"},
	} {
		t.Run(fmt.Sprintf("a refresh answered %d %s keeps the grant for the next call", fault.TokenStatus, fault.TokenErrorCode), func(t *testing.T) {
			p.ExpireAccessTokens()
			clock.Advance(2 * time.Hour)
			fault.IssParameter = true
			p.SetFaults(fault)
			if _, msg := apiCall(t, cs, "corp-api", "/v1/me"); !strings.Contains(msg, "could not be renewed just now") {
				t.Errorf("tool error = %q; want a passing failure", msg)
			}
			p.SetFaults(idptest.Faults{IssParameter: true})
			if out, msg := apiCall(t, cs, "corp-api", "/v1/me"); msg != "" || out["status"] != float64(200) {
				t.Errorf("once the provider answers again: %v, %q; want the call to succeed", out, msg)
			}
		})
	}

	t.Run("a revoked upstream grant ends in a tool error that says to sign in again", func(t *testing.T) {
		p.RevokeRefreshTokens()
		p.ExpireAccessTokens()
		clock.Advance(2 * time.Hour)
		_, msg := apiCall(t, cs, "corp-api", "/v1/me")
		if !strings.Contains(msg, `Sign in with "corp" again: open `+ts.URL+"/login/idp/corp") {
			t.Errorf("tool error = %q", msg)
		}
	})

	t.Run("signing in with the provider again restores api_call", func(t *testing.T) {
		start, _ := b.get(ts.URL + "/login/idp/corp")
		loc, _ := start.Location()
		resp, _ := b.get(loc.String()) // the provider
		loc, _ = resp.Location()
		resp, _ = b.get(loc.String()) // the callback, on to the account page
		loc, err := resp.Location()
		if err != nil || loc.String() != ts.URL+"/account" {
			t.Fatalf("sign-in without an application: %s to %v", resp.Status, loc)
		}
		if resp, body := b.get(loc.String()); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ada@example.com") {
			t.Fatalf("account page: %s\n%s", resp.Status, body)
		}
		if out, msg := apiCall(t, cs, "corp-api", "/v1/me"); msg != "" || out["status"] != float64(200) {
			t.Errorf("api_call after signing in again = %v, %q", out, msg)
		}
	})

	t.Run("a user who signed in with a password is told to sign in with the provider", func(t *testing.T) {
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
		atok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "api:call")
		_, msg := apiCall(t, connectMCP(t, ts.URL, atok.AccessToken), "corp-api", "/v1/me")
		if !strings.Contains(msg, `Sign in with "corp" again`) {
			t.Errorf("tool error = %q", msg)
		}
	})

	t.Run("user list prints the same through the running server's socket and offline", func(t *testing.T) {
		up := mustMcpd(t, "", "user", "list", "--data", ts.Data) + mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)
		ts.Stop(t)
		down := mustMcpd(t, "", "user", "list", "--data", ts.Data) + mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)
		if up != down || !strings.Contains(up, `"provider": "corp"`) {
			t.Errorf("server up:\n%s\nserver down:\n%s", up, down)
		}
	})

	t.Run("removing the user deletes its identities and upstream tokens", func(t *testing.T) {
		mustMcpd(t, "", "user", "remove", "ada@example.com", "--data", ts.Data)
		st := mustOpenStore(t, ts.Data)
		defer st.Close()
		if _, err := st.LookupIdentity(context.Background(), p.URL, "ada-1"); err == nil {
			t.Error("the identity outlived its user")
		}
		if _, err := st.GetUpstreamToken(context.Background(), "ada@example.com", "corp"); err == nil {
			t.Error("the upstream token outlived its user")
		}
	})
}

func TestIdentityProviderFaults(t *testing.T) {
	ada := idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true}
	tests := []struct {
		name   string
		faults idptest.Faults
		user   *idptest.User
		status int
		want   string
	}{
		{"a provider that is slow times out with a 504", idptest.Faults{Delay: 3 * time.Second}, nil, http.StatusGatewayTimeout, "did not answer in time"},
		{"a provider failing with 500 is a 502", idptest.Faults{TokenStatus: http.StatusInternalServerError}, nil, http.StatusBadGateway, "could not be reached"},
		{"an ID token from another issuer is a 502", idptest.Faults{Issuer: "https://evil.example"}, nil, http.StatusBadGateway, "could not be verified"},
		{"an ID token for another audience is a 502", idptest.Faults{Audience: "another-client"}, nil, http.StatusBadGateway, "could not be verified"},
		{"an ID token with a wrong nonce is a 502", idptest.Faults{Nonce: "not-this-one"}, nil, http.StatusBadGateway, "could not be verified"},
		{"the provider's error answer is a page with its code", idptest.Faults{AuthError: "access_denied"}, nil, http.StatusForbidden, "You did not let Corp SSO sign you in"},
		{"an unverified email creates no user", idptest.Faults{}, &idptest.User{Subject: "x", Email: "eve@example.com"}, http.StatusForbidden, "did not confirm an email address"},
		{"an answer naming another issuer (RFC 9207 iss) is a 400", idptest.Faults{IssParameter: true, ResponseIss: "https://evil.example"}, nil, http.StatusBadRequest, "did not come from Corp SSO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ada
			if tt.user != nil {
				u = *tt.user
			}
			p := idptest.NewOIDC(t, u)
			p.SetFaults(tt.faults)
			ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil, "--idp-timeout", "500ms")
			clientID, redirect := publicClient(t, ts.URL, "faults")
			loc, resp, body := newBrowser(t).idpAuthorize(ts.URL + "/authorize?" + url.Values{
				"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
			}.Encode())
			if loc != nil {
				t.Fatalf("sign-in succeeded: %s", loc)
			}
			if resp.StatusCode != tt.status || !bytes.Contains(body, []byte(tt.want)) {
				t.Errorf("status %d; want %d with %q:\n%s", resp.StatusCode, tt.status, tt.want, body)
			}
			if bytes.Contains(body, []byte("goroutine")) || bytes.Contains(body, []byte(".go:")) {
				t.Errorf("the page shows a stack trace:\n%s", body)
			}
			if out := mustMcpd(t, "", "user", "list", "--data", ts.Data); strings.Contains(out, "@example.com") {
				t.Errorf("a failed sign-in left a user:\n%s", out)
			}
		})
	}

	t.Run("a provider that is down is a 502, and mcpd starts without it", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		p.Close()
		ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil)
		clientID, redirect := publicClient(t, ts.URL, "down")
		_, resp, body := newBrowser(t).idpAuthorize(ts.URL + "/authorize?" + url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		}.Encode())
		if resp == nil || resp.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte("could not be reached")) {
			t.Errorf("got %v:\n%s", resp, body)
		}
	})

	t.Run("a replayed callback is refused", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil)
		b := newBrowser(t)
		start, _ := b.get(ts.URL + "/login/idp/corp")
		loc, _ := start.Location()
		resp, _ := b.get(loc.String())
		callback, _ := resp.Location()
		if resp, _ := b.get(callback.String()); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first callback: %s", resp.Status)
		}
		resp, body := b.get(callback.String())
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("expired or was completed already")) {
			t.Errorf("replayed callback: %s\n%s", resp.Status, body)
		}
	})
}

func TestGitHubSignInWithOrgAllowList(t *testing.T) {
	member := idptest.User{Subject: "583231", Email: "octo@example.com", EmailVerified: true, Orgs: []string{"acme"}}
	g := idptest.NewGitHub(t, member)
	cfg := map[string]any{"identity_providers": []any{map[string]any{
		"name": "gh", "display_name": "GitHub", "type": "github", "issuer": g.URL,
		"client_id": g.ClientID, "client_secret_env": "MCPD_TEST_GH_SECRET",
		"allowed_orgs": []string{"acme"}, "create_users": true,
	}}}
	ts := startServerEnv(t, func(e *cliEnv) {
		e.getenv = testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw", "MCPD_TEST_GH_SECRET": g.ClientSecret})
	}, "--config", writeConfig(t, cfg))
	clientID, redirect := publicClient(t, ts.URL, "gh client")

	t.Run("a member of an allowed organisation signs in as the user named by the primary email", func(t *testing.T) {
		tok := idpLogin(t, newBrowser(t), ts.URL, clientID, redirect, "notes:read")
		if got := whoami(t, connectMCP(t, ts.URL, tok.AccessToken))["user"]; got != "octo@example.com" {
			t.Errorf("whoami user = %v", got)
		}
	})

	t.Run("someone outside the organisations gets a 403 page saying why", func(t *testing.T) {
		g.SetUser(idptest.User{Subject: "99", Email: "mallory@example.com", EmailVerified: true, Orgs: []string{"other"}})
		_, resp, body := newBrowser(t).idpAuthorize(ts.URL + "/authorize?" + url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		}.Encode())
		if resp == nil || resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("not a member of an organisation this server admits (acme)")) {
			t.Errorf("got %v:\n%s", resp, body)
		}
	})
}

func TestIdentityProviderConfigErrors(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"name": "corp", "type": "oidc", "issuer": "https://login.example.com", "client_id": "mcpd", "client_secret_env": "CORP_SECRET"}
	}
	with := func(kv ...any) map[string]any {
		m := good()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name      string
		providers []any
		upstreams []any
		want      string
	}{
		{"the secret itself in the file is refused", []any{with("client_secret", "hunter2")}, nil, "client_secret is not allowed in the file"},
		{"a secret variable that is not set is refused", []any{with("client_secret_env", "UNSET_SECRET")}, nil, "UNSET_SECRET (client_secret_env) is not set"},
		{"a missing secret file is refused", []any{with("client_secret_env", nil, "client_secret_file", "/nonexistent/secret")}, nil, "client_secret_file"},
		{"both kinds of secret are refused", []any{with("client_secret_file", "/x")}, nil, "not both"},
		{"no secret is refused", []any{with("client_secret_env", nil)}, nil, "client_secret_env or client_secret_file is required"},
		{"oidc needs an issuer", []any{with("issuer", nil)}, nil, "type oidc needs issuer"},
		{"http is only for loopback issuers", []any{with("issuer", "http://login.example.com")}, nil, "http only on a loopback host"},
		{"an unknown type is refused", []any{with("type", "saml")}, nil, `type "saml" is not oidc or github`},
		{"allowed_orgs is for github", []any{with("allowed_orgs", []string{"acme"})}, nil, "allowed_orgs applies to type github only"},
		{"a name must fit a URL segment", []any{with("name", "corp sso")}, nil, "must be 1 to 64 letters"},
		{"names are unique", []any{good(), good()}, nil, "used twice"},
		{"an unknown key is refused", []any{with("tenant", "x")}, nil, `unknown field "tenant"`},
		{"a bad allowed email is refused", []any{with("allowed_emails", []string{"not-an-email"})}, nil, "is not an email address"},
		{"an upstream of auth type user must name a declared provider", []any{good()},
			[]any{map[string]any{"name": "api", "base_url": "https://api.example.com", "auth": map[string]any{"type": "user", "identity_provider": "other"}}},
			`names identity_provider "other", which identity_providers does not declare`},
		{"an upstream of auth type user must name a provider at all", []any{good()},
			[]any{map[string]any{"name": "api", "base_url": "https://api.example.com", "auth": map[string]any{"type": "user"}}},
			"auth type user needs identity_provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := map[string]any{"identity_providers": tt.providers}
			if tt.upstreams != nil {
				cfg["upstreams"] = tt.upstreams
			}
			fs := newFlagSet("serve", &bytes.Buffer{}, serveUsage)
			_, err := loadServeConfig(fs, []string{"--config", writeConfig(t, cfg)}, testEnv(map[string]string{"CORP_SECRET": "s3cret"}))
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 2 {
				t.Errorf("got %v (exit %d); want a usage error containing %q", err, exitCode(err), tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}

	t.Run("a valid provider loads with its secret, which never prints", func(t *testing.T) {
		fs := newFlagSet("serve", &bytes.Buffer{}, serveUsage)
		cfg, err := loadServeConfig(fs, []string{"--config", writeConfig(t, map[string]any{"identity_providers": []any{good()}})}, testEnv(map[string]string{"CORP_SECRET": "s3cret"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.IdentityProviders) != 1 || cfg.IdentityProviders[0].ClientSecret.reveal() != "s3cret" || cfg.IdentityProviders[0].DisplayName != "corp" {
			t.Fatalf("providers = %+v", cfg.IdentityProviders)
		}
		js, _ := json.Marshal(cfg)
		for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg.IdentityProviders), fmt.Sprintf("%#v", cfg.IdentityProviders[0]), string(js)} {
			if strings.Contains(s, "s3cret") {
				t.Errorf("the secret prints: %s", s)
			}
		}
	})
}

func TestUserAddWithEmail(t *testing.T) {
	for _, mode := range []string{"server down", "server up"} {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			if mode == "server up" {
				data = startServer(t).Data
			}
			if got := mustMcpd(t, "", "user", "add", "ada", "--email", "Ada@Example.com", "--data", data); got != "added user ada\n" {
				t.Errorf("user add --email printed %q", got)
			}
			mustMcpd(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--email", "bob@example.com", "--data", data)
			mustMcpd(t, "carol-pw\n", "user", "add", "carol", "--password-stdin", "--data", data)
			if _, _, err := mcpd(t, "", "user", "add", "ada2", "--email", "ada@example.com", "--data", data); !errors.Is(err, errExists) {
				t.Errorf("a second user with ada's email: %v; want errExists", err)
			}
			if _, _, err := mcpd(t, "", "user", "add", "dan", "--email", "not-an-email", "--data", data); exitCode(err) != 2 {
				t.Errorf("a bad email: exit %d; want 2", exitCode(err))
			}
			if got := mustMcpd(t, "", "user", "email", "carol", "carol@example.com", "--data", data); got != "set the email of carol to carol@example.com\n" {
				t.Errorf("user email printed %q", got)
			}
			if _, _, err := mcpd(t, "", "user", "email", "carol", "bob@example.com", "--data", data); !errors.Is(err, errExists) {
				t.Errorf("taking bob's email: %v; want errExists", err)
			}
			if _, _, err := mcpd(t, "", "user", "email", "nobody", "x@example.com", "--data", data); !errors.Is(err, errNotFound) {
				t.Errorf("email of an unknown user: %v; want errNotFound", err)
			}
			out := mustMcpd(t, "", "user", "list", "--data", data)
			for _, re := range []string{`(?m)^NAME\s+EMAIL\s+PROVIDERS\s+CREATED\s+PASSKEYS$`, `(?m)^ada\s+ada@example\.com\s+-\s`, `(?m)^bob\s+bob@example\.com\s+-\s`, `(?m)^carol\s+carol@example\.com\s+-\s`} {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("user list lacks %s:\n%s", re, out)
				}
			}
		})
	}
}

// TestIdentityProviderDocExamplesLoad loads every JSON example of
// docs/identity-providers.md as a config file: the worked examples are
// configurations mcpd accepts.
func TestIdentityProviderDocExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile("../../docs/identity-providers.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d JSON examples; want one per provider type and the api_call one", len(blocks))
	}
	anySecret := func(k string) string {
		if strings.HasSuffix(k, "_CLIENT_SECRET") {
			return "from-the-environment"
		}
		return ""
	}
	for i, m := range blocks {
		t.Run(fmt.Sprintf("example %d", i+1), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "mcpd.json")
			os.WriteFile(file, []byte(m[1]), 0o600)
			fs := newFlagSet("serve", new(strings.Builder), "")
			c, err := loadServeConfig(fs, []string{"--config", file, "--data", t.TempDir()}, anySecret)
			if err != nil {
				t.Fatalf("the documented example does not load: %v\n%s", err, m[1])
			}
			if len(c.IdentityProviders) == 0 {
				t.Errorf("the example declares no identity provider")
			}
		})
	}
}

func TestProvidersOnlyWithPasswordLoginOff(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true})
	ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil, "--password-login=false")
	clientID, redirect := publicClient(t, ts.URL, "providers only")
	authURL := ts.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}.Encode()
	resp, body := newBrowser(t).get(authURL)
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`name="password"`)) || !providerHref.Match(body) {
		t.Fatalf("login page: %s; want the provider's link and no password form:\n%s", resp.Status, body)
	}
	tok := idpLogin(t, newBrowser(t), ts.URL, clientID, redirect, "notes:read")
	if got := whoami(t, connectMCP(t, ts.URL, tok.AccessToken))["user"]; got != "ada@example.com" {
		t.Errorf("whoami user = %v", got)
	}
}

// TestIdentityProviderLinkingByEmail runs account linking by email against
// the real store: an address that only Unicode case folding would equate
// with a user's does not reach that user, while ASCII case does not matter.
func TestIdentityProviderLinkingByEmail(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "kelvin-1", Email: "\u212Aate@example.com", EmailVerified: true})
	ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, map[string]any{"create_users": false})
	mustMcpd(t, "kate-pw\n", "user", "add", "kate", "--password-stdin", "--email", "kate@example.com", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "linking")
	authURL := func() string {
		return ts.URL + "/authorize?" + url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		}.Encode()
	}

	t.Run("an address with the Kelvin sign is not kate's", func(t *testing.T) {
		loc, resp, body := newBrowser(t).idpAuthorize(authURL())
		if loc != nil || resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("There is no mcpd account for")) {
			t.Fatalf("got %v %v:\n%s", loc, resp, body)
		}
		if out := mustMcpd(t, "", "user", "list", "--data", ts.Data); !regexp.MustCompile(`(?m)^kate\s+kate@example\.com\s+-\s`).MatchString(out) {
			t.Errorf("kate gained a linked provider:\n%s", out)
		}
	})

	t.Run("the same address in ASCII upper case is kate's", func(t *testing.T) {
		p.SetUser(idptest.User{Subject: "kate-1", Email: "KATE@Example.COM", EmailVerified: true})
		tok := idpLogin(t, newBrowser(t), ts.URL, clientID, redirect, "notes:read")
		if got := whoami(t, connectMCP(t, ts.URL, tok.AccessToken))["user"]; got != "kate" {
			t.Errorf("whoami user = %v; want kate", got)
		}
	})
}

func TestClientSecretFileOpenToOthersIsWarnedAbout(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true})
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, false}, {0o644, true}, {0o666, true}} {
		t.Run(fmt.Sprintf("mode %04o", tt.mode), func(t *testing.T) {
			file := secretFile(t, p.ClientSecret)
			if err := os.Chmod(file, tt.mode); err != nil {
				t.Fatal(err)
			}
			ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, map[string]any{"client_secret_file": file})
			log := ts.Stderr.String()
			if got := strings.Contains(log, "open to every user of this machine"); got != tt.warn {
				t.Errorf("warned = %v; want %v:\n%s", got, tt.warn, log)
			}
			if strings.Contains(log, p.ClientSecret) {
				t.Error("the log holds the client secret")
			}
		})
	}
}

// TestIdentityProviderSecretsStayOutOfLogs runs sign-in, api_call, a
// refresh, a refused refresh and a second sign-in with the log at debug
// level, then looks for every code, token and ID token the provider handed
// out, the client secret and mcpd's own tokens in the log and the
// database file.
func TestIdentityProviderSecretsStayOutOfLogs(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true})
	p.SetFaults(idptest.Faults{EmailOnlyInfo: true})
	api := newProtectedAPI(t, p.ActiveSubject)
	clock := &testClock{}
	ts := oidcServer(t, p, api, clock, nil, "--log-level", "debug")
	clientID, redirect := publicClient(t, ts.URL, "secrets")
	b := newBrowser(t)
	tok := idpLogin(t, b, ts.URL, clientID, redirect, "notes:read", "api:call")
	cs := connectMCP(t, ts.URL, tok.AccessToken)
	if _, msg := apiCall(t, cs, "corp-api", "/v1/me"); msg != "" {
		t.Fatalf("api_call: %s", msg)
	}
	p.ExpireAccessTokens()
	clock.Advance(2 * time.Hour)
	if _, msg := apiCall(t, cs, "corp-api", "/v1/me"); msg != "" {
		t.Fatalf("api_call after expiry: %s", msg)
	}
	p.RevokeRefreshTokens()
	p.ExpireAccessTokens()
	clock.Advance(2 * time.Hour)
	if _, msg := apiCall(t, cs, "corp-api", "/v1/me"); !strings.Contains(msg, "Sign in with") {
		t.Fatalf("api_call after revocation: %s", msg)
	}
	idpLogin(t, b, ts.URL, clientID, redirect, "notes:read", "api:call")
	p.SetFaults(idptest.Faults{AuthError: "access_denied"})
	newBrowser(t).idpAuthorize(ts.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}.Encode())
	ts.Stop(t)

	log := ts.Stderr.String()
	if !strings.Contains(log, `"level":"DEBUG"`) && !strings.Contains(log, `"level":"INFO"`) {
		t.Fatalf("the log is not at debug level:\n%.2000s", log)
	}
	db, err := os.ReadFile(filepath.Join(ts.Data, "mcpd.db"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := append(p.Issued(), tok.AccessToken, tok.RefreshToken)
	if len(secrets) < 8 {
		t.Fatalf("only %d secrets issued: the run did not do what it says", len(secrets))
	}
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log holds %.12s…", s)
		}
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("the database holds %.12s… in plain text", s)
		}
	}
}

// TestIdentityProviderConcurrentFirstSignIns: one person's first sign-ins
// in four tabs at once all end as one user with one link, on bbolt (whose
// writes run one at a time) and on PostgreSQL (read committed: the losers
// meet the winner's user at their insert).
func TestIdentityProviderConcurrentFirstSignIns(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true})
			var args, where []string
			if backend == "postgres" {
				db := pgtest.URL(t)
				args, where = []string{"--database", db}, []string{"--database", db}
			}
			ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil, args...)
			if where == nil {
				where = []string{"--data", ts.Data}
			}
			const tabs = 4
			browsers := make([]*browser, tabs)
			callbacks := make([]string, tabs)
			for i := range tabs {
				browsers[i] = newBrowser(t)
				start, _ := browsers[i].get(ts.URL + "/login/idp/corp")
				loc, err := start.Location()
				if err != nil {
					t.Fatalf("start: %s", start.Status)
				}
				resp, _ := browsers[i].get(loc.String()) // the provider
				cb, err := resp.Location()
				if err != nil {
					t.Fatalf("provider: %s", resp.Status)
				}
				callbacks[i] = cb.String()
			}
			var wg sync.WaitGroup
			statuses := make([]string, tabs)
			for i := range tabs {
				wg.Go(func() {
					resp, body := browsers[i].get(callbacks[i])
					statuses[i] = fmt.Sprintf("%d %.200s", resp.StatusCode, body)
				})
			}
			wg.Wait()
			for i, st := range statuses {
				if !strings.HasPrefix(st, "303 ") {
					t.Errorf("tab %d: %s; want 303", i, st)
				}
			}
			var users []userView
			if err := json.Unmarshal([]byte(mustMcpd(t, "", append([]string{"user", "list", "--json"}, where...)...)), &users); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				if u.Name != "admin" {
					got = append(got, fmt.Sprintf("%s %d", u.Name, len(u.Identities)))
				}
			}
			if len(got) != 1 || got[0] != "ada@example.com 1" {
				t.Errorf("users %q; want one user ada@example.com with one identity", got)
			}
		})
	}
}

// TestIdentityProviderPassedOnAddress: an address the provider passes from
// one account to another (a departed colleague's, given to a newcomer)
// does not hand the newcomer the old holder's mcpd account; the operator
// can unlink the old account when both are the same person's.
func TestIdentityProviderPassedOnAddress(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "old-1", Email: "sam@example.com", EmailVerified: true})
	ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil)
	clientID, redirect := publicClient(t, ts.URL, "passed on")
	tok := idpLogin(t, newBrowser(t), ts.URL, clientID, redirect, "notes:read")
	if got := whoami(t, connectMCP(t, ts.URL, tok.AccessToken))["user"]; got != "sam@example.com" {
		t.Fatalf("whoami user = %v", got)
	}
	authURL := ts.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}.Encode()

	t.Run("another account at the provider with the address is refused with a 403 saying what to do", func(t *testing.T) {
		p.SetUser(idptest.User{Subject: "new-1", Email: "sam@example.com", EmailVerified: true})
		loc, resp, body := newBrowser(t).idpAuthorize(authURL)
		if loc != nil || resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("mcpd user unlink sam@example.com corp")) {
			t.Fatalf("got %v %v:\n%s", loc, resp, body)
		}
	})

	t.Run("user unlink forgets the old account, through the socket", func(t *testing.T) {
		if out := mustMcpd(t, "", "user", "unlink", "sam@example.com", "corp", "--data", ts.Data); out != "unlinked 1 identity of sam@example.com at corp\n" {
			t.Errorf("user unlink printed %q", out)
		}
		if out := mustMcpd(t, "", "user", "list", "--data", ts.Data); !regexp.MustCompile(`(?m)^sam@example\.com\s+sam@example\.com\s+-\s`).MatchString(out) {
			t.Errorf("user list after unlink:\n%s", out)
		}
	})

	t.Run("then the new account signs in to the user", func(t *testing.T) {
		tok := idpLogin(t, newBrowser(t), ts.URL, clientID, redirect, "notes:read")
		if got := whoami(t, connectMCP(t, ts.URL, tok.AccessToken))["user"]; got != "sam@example.com" {
			t.Errorf("whoami user = %v", got)
		}
	})

	t.Run("user unlink works with the server stopped, and names an unknown user", func(t *testing.T) {
		ts.Stop(t)
		if out := mustMcpd(t, "", "user", "unlink", "sam@example.com", "corp", "--data", ts.Data); out != "unlinked 1 identity of sam@example.com at corp\n" {
			t.Errorf("user unlink printed %q", out)
		}
		if out := mustMcpd(t, "", "user", "unlink", "sam@example.com", "corp", "--data", ts.Data); out != "unlinked 0 identities of sam@example.com at corp\n" {
			t.Errorf("user unlink again printed %q", out)
		}
		if _, _, err := mcpd(t, "", "user", "unlink", "nobody", "corp", "--data", ts.Data); !errors.Is(err, errNotFound) {
			t.Errorf("unlinking an unknown user: %v; want errNotFound", err)
		}
	})
}

// TestIdentityProviderUnderIssuerPath: behind a proxy serving mcpd under
// /mcpd, the provider is sent the callback under /mcpd (the redirect URI
// registered there), and the browser's session cookie, scoped to /mcpd,
// reaches the callback, so the sign-in completes.
func TestIdentityProviderUnderIssuerPath(t *testing.T) {
	p := idptest.NewOIDC(t, idptest.User{Subject: "ada-1", Email: "ada@example.com", EmailVerified: true})
	proxy := &pathProxy{prefix: "/mcpd", strip: true}
	front := httptest.NewServer(proxy)
	defer front.Close()
	issuer := front.URL + "/mcpd"
	ts := oidcServer(t, p, newProtectedAPI(t, p.ActiveSubject), &testClock{}, nil, "--issuer", issuer)
	proxy.backend, _ = url.Parse(ts.URL)
	clientID, redirect := publicClient(t, issuer, "under a path")
	b := newBrowser(t)
	start, _ := b.get(issuer + "/login/idp/corp")
	loc, err := start.Location()
	if err != nil {
		t.Fatalf("start: %s", start.Status)
	}
	if got := loc.Query().Get("redirect_uri"); got != issuer+"/login/idp/corp/callback" {
		t.Errorf("redirect_uri sent to the provider = %q; want %q", got, issuer+"/login/idp/corp/callback")
	}
	tok := idpLogin(t, b, issuer, clientID, redirect, "notes:read")
	if got := whoami(t, connectMCP(t, issuer, tok.AccessToken))["user"]; got != "ada@example.com" {
		t.Errorf("whoami user = %v", got)
	}
}
