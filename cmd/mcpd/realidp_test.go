package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// The proof against a real OpenID provider: the OpenID-certified example
// provider of github.com/zitadel/oidc/v3 (example/server at v3.52.0),
// built from the Go module proxy by e2e/idp/run.sh, which passes its path
// in MCPD_E2E_OIDC_SERVER. Without it the test skips: make test does not
// build the provider, make e2e does.

// zitadel is a running example provider.
type zitadel struct {
	Issuer string // http://localhost:PORT/, as the provider names itself
	cmd    *exec.Cmd
	log    *syncBuffer
	disc   struct {
		Introspection string `json:"introspection_endpoint"`
		Token         string `json:"token_endpoint"`
	}
}

// startZitadel runs the provider on port with one user, ada, and the
// given redirect URIs for its clients web and api (secret "secret").
func startZitadel(t *testing.T, bin, port string, redirects []string) *zitadel {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.json")
	b, _ := json.Marshal(map[string]any{"u1": map[string]any{
		"ID": "u1", "Username": "ada", "Password": "ada-pw-9k2", "FirstName": "Ada", "LastName": "Lovelace",
		"Email": "Ada@Example.com", "EmailVerified": true, "PreferredLanguage": "en",
	}})
	if err := os.WriteFile(users, b, 0o600); err != nil {
		t.Fatal(err)
	}
	z := &zitadel{Issuer: "http://localhost:" + port + "/", log: &syncBuffer{}}
	z.cmd = exec.Command(bin)
	z.cmd.Env = append(os.Environ(), "PORT="+port, "USERS_FILE="+users, "REDIRECT_URI="+strings.Join(redirects, ","))
	z.cmd.Stdout, z.cmd.Stderr = z.log, z.log
	if err := z.cmd.Start(); err != nil {
		t.Fatalf("start the provider: %v", err)
	}
	t.Cleanup(z.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(z.Issuer + ".well-known/openid-configuration")
		if err == nil && resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&z.disc)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			return z
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider did not come up: %v\n%s", err, z.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the provider; a second call does nothing.
func (z *zitadel) stop() {
	if z.cmd.Process != nil && z.cmd.ProcessState == nil {
		z.cmd.Process.Kill()
		z.cmd.Wait()
	}
}

// introspect asks the provider whether an access token is live (RFC 7662),
// authenticated as the client the token was issued to, and returns its
// subject.
func (z *zitadel) introspect(tok string) (string, bool) {
	req, _ := http.NewRequest(http.MethodPost, z.disc.Introspection, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var out struct {
		Active  bool   `json:"active"`
		Subject string `json:"sub"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil || !out.Active {
		return "", false
	}
	return out.Subject, true
}

// providerCallback signs ada in at the provider through its login form
// (with the browser b, as a person would) and returns the URL the provider
// sends the browser back to, unfollowed.
func providerCallback(t *testing.T, b *browser, mcpdURL, provider string) *url.URL {
	t.Helper()
	resp, body := b.get(mcpdURL + "/login/idp/" + provider)
	for step := 0; step < 10; step++ {
		switch {
		case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
			loc, _ := resp.Location()
			if strings.HasPrefix(loc.String(), mcpdURL+"/login/idp/") {
				return loc
			}
			resp, body = b.get(loc.String())
		case resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`name="password"`)):
			f := parseForm(t, resp.Request.URL.String(), body)
			f.Fields.Set("username", "ada")
			f.Fields.Set("password", "ada-pw-9k2")
			resp, body = b.post(f.Action, f.Fields)
		default:
			t.Fatalf("sign-in at the provider stopped at %s %s:\n%s", resp.Request.URL, resp.Status, body)
		}
	}
	t.Fatal("sign-in at the provider did not come back")
	return nil
}

func TestRealOpenIDProvider(t *testing.T) {
	bin := os.Getenv("MCPD_E2E_OIDC_SERVER")
	if bin == "" {
		t.Skip("MCPD_E2E_OIDC_SERVER is not set; e2e/idp/run.sh builds the provider and runs this test")
	}
	ctx := newChrome(t)
	_, pport, _ := net.SplitHostPort(freeAddr(t))
	issuer := "http://localhost:" + pport + "/"

	// The API that trusts only the provider: it introspects every token.
	var z *zitadel
	api := newProtectedAPI(t, func(tok string) (string, bool) { return z.introspect(tok) })
	secret := secretFile(t, "secret")
	provider := func(name, iss string) map[string]any {
		return map[string]any{
			"name": name, "display_name": "Zitadel example", "type": "oidc", "issuer": iss,
			"client_id": "web", "client_secret_file": secret,
			"scopes": []string{"openid", "email", "profile", "offline_access"}, "create_users": true,
		}
	}
	cfg := map[string]any{
		"identity_providers": []any{
			provider("zitadel", issuer),
			// The same provider under another issuer name: its discovery
			// document names another issuer than the one configured.
			provider("wrong-issuer", "http://127.0.0.1:"+pport+"/"),
		},
		"upstreams": []any{map[string]any{
			"name": "profile-api", "base_url": api.URL, "path_prefixes": []string{"/v1"},
			"auth": map[string]any{"type": "user", "identity_provider": "zitadel"},
		}},
	}
	clock := &testClock{}
	ts := startServerEnv(t, func(e *cliEnv) { e.now = clock.Now }, "--config", writeConfig(t, cfg))
	z = startZitadel(t, bin, pport, []string{ts.URL + "/login/idp/zitadel/callback", ts.URL + "/login/idp/wrong-issuer/callback"})

	clientID, _ := publicClient(t, ts.URL, "Real IdP Client")
	cb := newCallbackServer(t)
	oc := &oauth2.Config{
		ClientID: clientID, RedirectURL: cb.URL + "/callback", Scopes: []string{"notes:read", "api:call"},
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	var tok *oauth2.Token

	t.Run("browser: mcpd's login page, the provider's own login page, back, consent, the client's redirect", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		err := chromedp.Do(ctx,
			chromedp.Navigate(oc.AuthCodeURL("state-real-idp-1", oauth2.S256ChallengeOption(verifier))),
			chromedp.WaitVisible(`a[href*="/login/idp/zitadel"]`),
			chromedp.Click(`a[href*="/login/idp/zitadel"]`),
			chromedp.WaitVisible(`#username`), // the provider's page
			chromedp.SendKeys(`#username`, "ada"),
			chromedp.SendKeys(`#password`, "ada-pw-9k2"),
			chromedp.Submit(`#password`),
			chromedp.WaitVisible(`button[name=action][value=allow]`), // mcpd's consent
		)
		if err != nil {
			t.Fatalf("browser: %v\nprovider log:\n%s", err, z.log.String())
		}
		consent, err := chromedp.Run(ctx, chromedp.Text(`body`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(consent, "ada@example.com") || !strings.Contains(consent, "Real IdP Client") {
			t.Errorf("consent page:\n%s", consent)
		}
		if err := chromedp.Do(ctx, chromedp.Click(`button[name=action][value=allow]`), chromedp.WaitVisible(`#done`)); err != nil {
			t.Fatalf("allow: %v", err)
		}
		q := cb.last()
		if q.Get("state") != "state-real-idp-1" || q.Get("iss") != ts.URL {
			t.Fatalf("client redirect %v", q)
		}
		if tok, err = oc.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("exchange: %v", err)
		}
	})
	if tok == nil {
		t.FailNow()
	}
	cs := connectMCP(t, ts.URL, tok.AccessToken)

	t.Run("whoami shows the user linked to the provider's account", func(t *testing.T) {
		if got := whoami(t, cs)["user"]; got != "ada@example.com" {
			t.Errorf("whoami user = %v; want ada@example.com", got)
		}
		out := mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)
		if !strings.Contains(out, `"provider": "zitadel"`) || !strings.Contains(out, `"subject": "u1"`) || !strings.Contains(out, `"issuer": "`+issuer+`"`) {
			t.Errorf("user list --json:\n%s", out)
		}
	})

	var first string
	t.Run("api_call reaches the API that accepts only the provider's tokens, as the user", func(t *testing.T) {
		out, msg := apiCall(t, cs, "profile-api", "/v1/me")
		if msg != "" || out["status"] != float64(200) || !strings.Contains(fmt.Sprint(out["body"]), `"subject":"u1"`) {
			t.Fatalf("api_call = %v, %q", out, msg)
		}
		seen := api.tokens()
		first = seen[len(seen)-1]
	})

	t.Run("with the upstream access token expired, the call succeeds after mcpd refreshes it", func(t *testing.T) {
		if os.Getenv("MCPD_E2E_REAL_EXPIRY") != "" {
			// The provider's access tokens live five minutes: wait them out.
			deadline := time.Now().Add(6 * time.Minute)
			for _, live := z.introspect(first); live; _, live = z.introspect(first) {
				if time.Now().After(deadline) {
					t.Fatal("the access token did not expire in six minutes")
				}
				time.Sleep(5 * time.Second)
			}
		} else {
			// mcpd's clock moves past the token's expiry (expires_in 300 s).
			clock.Advance(10 * time.Minute)
		}
		out, msg := apiCall(t, cs, "profile-api", "/v1/me")
		if msg != "" || out["status"] != float64(200) {
			t.Fatalf("api_call = %v, %q", out, msg)
		}
		seen := api.tokens()
		second := seen[len(seen)-1]
		if second == first {
			t.Fatal("the API saw the expired token again")
		}
		if _, live := z.introspect(first); live {
			t.Error("the provider still accepts the old access token after the refresh rotated it")
		}
		if _, live := z.introspect(second); !live {
			t.Error("the refreshed access token is not live at the provider")
		}
	})

	b := newBrowser(t)
	t.Run("a callback with a state mcpd never issued is a 400", func(t *testing.T) {
		cbURL := providerCallback(t, b, ts.URL, "zitadel")
		q := cbURL.Query()
		q.Set("state", "forged-"+q.Get("state"))
		cbURL.RawQuery = q.Encode()
		resp, body := b.get(cbURL.String())
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("expired or was completed already")) {
			t.Errorf("%s\n%s", resp.Status, body)
		}
	})

	t.Run("a replayed callback is a 400, and so is the provider's code under a fresh state", func(t *testing.T) {
		cbURL := providerCallback(t, b, ts.URL, "zitadel")
		if resp, body := b.get(cbURL.String()); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first callback: %s\n%s", resp.Status, body)
		}
		resp, body := b.get(cbURL.String())
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("expired or was completed already")) {
			t.Errorf("replayed callback: %s\n%s", resp.Status, body)
		}
		start, _ := b.get(ts.URL + "/login/idp/zitadel")
		at, _ := start.Location()
		replay := url.Values{"state": {at.Query().Get("state")}, "code": {cbURL.Query().Get("code")}}
		resp, body = b.get(ts.URL + "/login/idp/zitadel/callback?" + replay.Encode())
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("did not accept this sign-in")) {
			t.Errorf("used code under a fresh state: %s\n%s", resp.Status, body)
		}
	})

	t.Run("an error the provider answers ends on a page naming it", func(t *testing.T) {
		start, _ := b.get(ts.URL + "/login/idp/zitadel")
		at, _ := start.Location()
		q := at.Query()
		q.Set("prompt", "none") // no session at the provider: it must answer login_required
		at.RawQuery = q.Encode()
		resp, body := b.get(at.String())
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("the provider answered %s:\n%s", resp.Status, body)
		}
		resp, body = b.get(loc.String())
		if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte("could not sign you in (it answered login_required)")) {
			t.Errorf("%s\n%s", resp.Status, body)
		}
	})

	t.Run("a provider whose discovery names another issuer is a 502", func(t *testing.T) {
		resp, body := b.get(ts.URL + "/login/idp/wrong-issuer")
		if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte("could not be verified")) {
			t.Errorf("%s\n%s", resp.Status, body)
		}
	})

	t.Run("a provider that went down is a 502, and no failure left a user behind", func(t *testing.T) {
		cbURL := providerCallback(t, b, ts.URL, "zitadel")
		z.stop()
		resp, body := b.get(cbURL.String())
		if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte("could not be reached")) {
			t.Errorf("%s\n%s", resp.Status, body)
		}
		var users []userView
		if err := json.Unmarshal([]byte(mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)), &users); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range users {
			names = append(names, u.Name)
		}
		if strings.Join(names, ",") != "admin,ada@example.com" && strings.Join(names, ",") != "ada@example.com,admin" {
			t.Errorf("users = %v; want admin and ada@example.com only", names)
		}
	})
}
