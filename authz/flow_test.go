package authz

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"golang.org/x/oauth2"
)

// vscodeRegistration is the body VS Code sends to /register.
const vscodeRegistration = `{
  "client_name": "Visual Studio Code",
  "client_uri": "https://code.visualstudio.com",
  "redirect_uris": [
    "https://insiders.vscode.dev/redirect",
    "https://vscode.dev/redirect",
    "http://127.0.0.1/",
    "http://127.0.0.1:33418/"
  ],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "none",
  "application_type": "native"
}`

func TestVSCodeFlow(t *testing.T) {
	e := newEnv(t, nil)

	reg := e.register(vscodeRegistration)
	t.Run("VS Code's registration makes a public client without a secret", func(t *testing.T) {
		if reg.ClientSecret != "" {
			t.Errorf("client_secret = %q; want none", reg.ClientSecret)
		}
		if diff := cmp.Diff("none", reg.TokenEndpointAuthMethod); diff != "" {
			t.Errorf("token_endpoint_auth_method (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"authorization_code", "refresh_token"}, reg.GrantTypes); diff != "" {
			t.Errorf("grant_types (-want +got):\n%s", diff)
		}
	})

	// The redirect lands on a real listener on a random loopback port.
	got := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		w.WriteHeader(http.StatusOK)
	}))
	defer cb.Close()
	redirect := cb.URL + "/" // http://127.0.0.1:<random>/

	b := e.browser()
	v := oauth2.GenerateVerifier()
	p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read notes:write", state: "vscode-state-1", verifier: v,
		extra: url.Values{"resource": {e.url("/mcp")}}}))
	t.Run("no session shows the login page with the client's name", func(t *testing.T) {
		if !isLoginPage(p) || !strings.Contains(p.body, "Visual Studio Code") {
			t.Fatalf("got status %d: %.400s", p.status, p.body)
		}
	})
	p = b.login(t, p, "alice", "correct horse")
	t.Run("consent page shows client, redirect host and scope words", func(t *testing.T) {
		for _, want := range []string{"Visual Studio Code", "127.0.0.1", "Read your notes", "Create, change and delete your notes"} {
			if !strings.Contains(p.body, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
		if strings.Contains(p.body, "Call the upstream APIs") {
			t.Errorf("consent page shows a scope that was not requested")
		}
	})
	p = b.decide(t, p, "allow", []string{"notes:read", "notes:write"}, false)
	loc := p.location(t)
	if !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("redirected to %s; want the presented %s", loc, redirect)
	}
	b.get(loc.String())
	q := <-got
	t.Run("authorization response carries code, state and iss", func(t *testing.T) {
		if q.Get("code") == "" {
			t.Errorf("no code in %v", q)
		}
		if diff := cmp.Diff([]string{"vscode-state-1"}, q["state"]); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{e.ts.URL}, q["iss"]); diff != "" {
			t.Errorf("iss (-want +got):\n%s", diff)
		}
	})

	st, tok, hdr := e.tokenRequest(url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {redirect},
		"client_id":     {reg.ClientID},
		"code_verifier": {v},
		"resource":      {e.url("/mcp")},
	}, "", "")
	t.Run("code exchange returns access and refresh token without caching", func(t *testing.T) {
		if st != http.StatusOK {
			t.Fatalf("status %d: %v", st, tok)
		}
		if tok["refresh_token"] == nil || tok["access_token"] == nil {
			t.Errorf("token response %v lacks a token", tok)
		}
		if diff := cmp.Diff("notes:read notes:write", tok["scope"]); diff != "" {
			t.Errorf("scope (-want +got):\n%s", diff)
		}
		if got := hdr.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q; want no-store", got)
		}
	})
	access, _ := tok["access_token"].(string)
	info, err := e.srv.Verify(context.Background(), access, nil)
	t.Run("the access token verifies for the MCP resource", func(t *testing.T) {
		if err != nil {
			t.Fatal(err)
		}
		want := &auth.TokenInfo{UserID: "alice", Scopes: []string{"notes:read", "notes:write"}, Expiration: info.Expiration, Extra: map[string]any{"client_id": reg.ClientID}}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("TokenInfo (-want +got):\n%s", diff)
		}
	})
	t.Run("the client is recorded as activated", func(t *testing.T) {
		if c := e.store.client(reg.ClientID); c.ActivatedAt.IsZero() || c.LastUsedAt.IsZero() {
			t.Errorf("ActivatedAt %v, LastUsedAt %v; want both set", c.ActivatedAt, c.LastUsedAt)
		}
	})
	t.Run("the refresh token rotates", func(t *testing.T) {
		st, out := e.refresh(reg.ClientID, tok["refresh_token"].(string))
		if st != http.StatusOK {
			t.Fatalf("refresh status %d: %v", st, out)
		}
		if out["refresh_token"] == tok["refresh_token"] {
			t.Errorf("refresh token did not rotate")
		}
		if err := e.verify(out["access_token"].(string)); err != nil {
			t.Errorf("new access token: %v", err)
		}
	})
}

func TestClaudeCodeLocalhostCallback(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://localhost/callback")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	used := "http://localhost:49152/callback"
	loc := e.authorize(b, authRequest{clientID: reg.ClientID, redirect: used, scope: "notes:read", verifier: v})
	t.Run("localhost on another port is redirected to exactly", func(t *testing.T) {
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != used {
			t.Fatalf("redirected to %s; want %s", got, used)
		}
	})
	code := loc.Query().Get("code")
	t.Run("a different redirect_uri at the token endpoint is refused", func(t *testing.T) {
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:49153/callback"}, "client_id": {reg.ClientID}, "code_verifier": {v}}, "", "")
		if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("status %d %v; want 400 invalid_grant", st, out)
		}
	})
	t.Run("the presented redirect_uri exchanges the code", func(t *testing.T) {
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {used}, "client_id": {reg.ClientID}, "code_verifier": {v}}, "", "")
		// The first failed attempt does not consume the code in fosite.
		if st != http.StatusOK {
			t.Fatalf("status %d %v; want 200", st, out)
		}
	})
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb", "https://app.example/cb")
	v := oauth2.GenerateVerifier()
	base := func() url.Values {
		return url.Values{
			"response_type":         {"code"},
			"client_id":             {reg.ClientID},
			"redirect_uri":          {"http://127.0.0.1:5000/cb"},
			"code_challenge":        {oauth2.S256ChallengeFromVerifier(v)},
			"code_challenge_method": {"S256"},
			"state":                 {"st-abcdefgh"},
		}
	}
	type want struct {
		status   int
		login    bool   // the login page is shown
		errParam string // error redirect with this error
		state    string // state in the redirect; "" means absent
	}
	tests := []struct {
		name string
		mod  func(url.Values)
		want want
	}{
		{"valid request shows the login page", func(url.Values) {}, want{status: 200, login: true}},
		{"unknown client gets an error page, not a redirect", func(q url.Values) { q.Set("client_id", "nope") }, want{status: 400}},
		{"unregistered redirect_uri gets an error page, not a redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, want{status: 400}},
		{"loopback with another path is unregistered", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5000/other") }, want{status: 400}},
		{"loopback with a percent-encoded form of the path is unregistered", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5000/c%62") }, want{status: 400}},
		{"loopback with an encoded slash in the path is unregistered", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5000/cb%2F") }, want{status: 400}},
		{"missing redirect_uri with several registered gets an error page", func(q url.Values) { q.Del("redirect_uri") }, want{status: 400}},
		{"plain PKCE is refused", func(q url.Values) {
			q.Set("code_challenge_method", "plain")
			q.Set("code_challenge", v)
		}, want{status: 303, errParam: "invalid_request", state: "st-abcdefgh"}},
		{"missing PKCE is refused", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, want{status: 303, errParam: "invalid_request", state: "st-abcdefgh"}},
		{"a foreign resource is invalid_target", func(q url.Values) { q.Set("resource", "https://other.example/mcp") }, want{status: 303, errParam: "invalid_target", state: "st-abcdefgh"}},
		{"resource with trailing slash is the same resource", func(q url.Values) { q.Set("resource", e.url("/mcp/")) }, want{status: 200, login: true}},
		{"resource with upper-case scheme and host is the same resource", func(q url.Values) {
			q.Set("resource", strings.ToUpper(strings.TrimSuffix(e.url(""), ""))+"/mcp")
		}, want{status: 200, login: true}},
		{"missing state is accepted", func(q url.Values) { q.Del("state") }, want{status: 200, login: true}},
		{"a short state is accepted", func(q url.Values) { q.Set("state", "s1") }, want{status: 200, login: true}},
		{"missing state is not echoed in an error", func(q url.Values) { q.Del("state"); q.Set("response_type", "token") }, want{status: 303, errParam: "unsupported_response_type"}},
		{"unknown scope is dropped, not refused", func(q url.Values) { q.Set("scope", "notes:read admin") }, want{status: 200, login: true}},
		{"prompt=none without a session is login_required", func(q url.Values) { q.Set("prompt", "none") }, want{status: 303, errParam: "login_required", state: "st-abcdefgh"}},
	}
	// Error redirects come only after the user has signed in; prompt=none
	// answers login_required at once.
	signedIn := e.browser()
	signedIn.login(t, signedIn.get(e.url("/authorize?"+base().Encode())), "alice", "correct horse")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := base()
			tt.mod(q)
			b := e.browser()
			if tt.want.errParam != "" && tt.want.errParam != "login_required" {
				b = signedIn
			}
			p := b.get(e.url("/authorize?" + q.Encode()))
			if p.status != tt.want.status {
				t.Fatalf("status %d; want %d: %.300s", p.status, tt.want.status, p.body)
			}
			if tt.want.status == 400 && p.header.Get("Location") != "" {
				t.Errorf("error page redirects to %s", p.header.Get("Location"))
			}
			if got := isLoginPage(p); got != tt.want.login {
				t.Errorf("login page = %v; want %v", got, tt.want.login)
			}
			if tt.want.status != 303 {
				return
			}
			rq := p.location(t).Query()
			got := map[string]string{"error": rq.Get("error"), "iss": rq.Get("iss"), "state": rq.Get("state")}
			wantm := map[string]string{"error": tt.want.errParam, "iss": e.ts.URL, "state": tt.want.state}
			if diff := cmp.Diff(wantm, got); diff != "" {
				t.Errorf("redirect parameters (-want +got):\n%s", diff)
			}
			if _, ok := rq["state"]; !ok && tt.want.state != "" || ok && tt.want.state == "" {
				t.Errorf("state presence wrong in %v", rq)
			}
		})
	}
	t.Run("an erroneous request is not redirected before the user signs in", func(t *testing.T) {
		q := base()
		q.Del("code_challenge")
		b := e.browser()
		p := b.get(e.url("/authorize?" + q.Encode()))
		if p.status != http.StatusOK || !isLoginPage(p) || p.header.Get("Location") != "" {
			t.Fatalf("status %d location %q; want the login page", p.status, p.header.Get("Location"))
		}
		p = b.login(t, p, "alice", "correct horse")
		if p.status != http.StatusSeeOther {
			t.Fatalf("after login: status %d; want 303", p.status)
		}
		rq := p.location(t).Query()
		if rq.Get("error") != "invalid_request" || rq.Get("iss") != e.ts.URL || rq.Get("state") != "st-abcdefgh" {
			t.Errorf("redirect parameters %v; want error=invalid_request with iss and state", rq)
		}
	})
}

func TestConsentDecisions(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	redirect := "http://127.0.0.1:6000/cb"

	t.Run("deny redirects with access_denied, iss and state", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", state: "deny-state-1", verifier: oauth2.GenerateVerifier()}))
		p = b.login(t, p, "alice", "correct horse")
		p = b.decide(t, p, "deny", nil, false)
		q := p.location(t).Query()
		got := map[string]string{"error": q.Get("error"), "iss": q.Get("iss"), "state": q.Get("state"), "code": q.Get("code")}
		want := map[string]string{"error": "access_denied", "iss": e.ts.URL, "state": "deny-state-1", "code": ""}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("unchecked scopes are not granted", func(t *testing.T) {
		b := e.browser()
		v := oauth2.GenerateVerifier()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read notes:write", verifier: v}))
		p = b.login(t, p, "alice", "correct horse")
		p = b.decide(t, p, "allow", []string{"notes:read", "api:call"}, false)
		code := p.location(t).Query().Get("code")
		tok, err := e.oauthConfig(reg.ClientID, "", redirect, oauth2.AuthStyleInParams).Exchange(context.Background(), code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.srv.Verify(context.Background(), tok.AccessToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"notes:read"}, info.Scopes); diff != "" {
			t.Errorf("scopes (-want +got):\n%s", diff)
		}
	})

	t.Run("remembered consent skips the page and a wider scope shows it again", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		p = b.login(t, p, "bob", "battery staple")
		p = b.decide(t, p, "allow", []string{"notes:read"}, true)
		if p.location(t).Query().Get("code") == "" {
			t.Fatal("first authorization gave no code")
		}
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		if p.status != http.StatusSeeOther || p.location(t).Query().Get("code") == "" {
			t.Fatalf("second authorization: status %d; want a redirect with a code: %.200s", p.status, p.body)
		}
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read notes:write", verifier: oauth2.GenerateVerifier()}))
		if !isConsentPage(p) {
			t.Fatalf("wider scope: status %d; want the consent page", p.status)
		}
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier(), extra: url.Values{"prompt": {"consent"}}}))
		if !isConsentPage(p) {
			t.Fatalf("prompt=consent: status %d; want the consent page", p.status)
		}
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read notes:write", verifier: oauth2.GenerateVerifier(), extra: url.Values{"prompt": {"none"}}}))
		if p.status != http.StatusSeeOther || p.location(t).Query().Get("error") != "consent_required" {
			t.Fatalf("prompt=none with a wider scope: status %d; want consent_required", p.status)
		}
		e.clock.Advance(31 * 24 * time.Hour)
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		if !isLoginPage(p) {
			t.Fatalf("after the session's idle timeout: status %d; want the login page", p.status)
		}
		if p = b.login(t, p, "bob", "battery staple"); !isConsentPage(p) {
			t.Fatalf("after the consent expired: status %d; want the consent page", p.status)
		}
	})
}

func TestStateEcho(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	for _, tt := range []struct{ name, state string }{
		{"a missing state is not echoed", ""},
		{"a short state is echoed", "s1"},
		{"a long state is echoed", "a-long-state-value-1234"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			loc := e.authorize(e.browser(), authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:6500/cb", state: tt.state, verifier: oauth2.GenerateVerifier()})
			q := loc.Query()
			_, has := q["state"]
			if has != (tt.state != "") || q.Get("state") != tt.state {
				t.Errorf("redirect query %v; want state %q", q, tt.state)
			}
			if q.Get("code") == "" || q.Get("iss") != e.ts.URL {
				t.Errorf("redirect query %v; want code and iss", q)
			}
		})
	}
}

func TestRemovedUserSessionEnds(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	a := authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:6600/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}
	p := b.login(t, b.get(e.authorizeURL(a)), "bob", "battery staple")
	if !isConsentPage(p) {
		t.Fatal("no consent page after login")
	}
	e.store.mu.Lock()
	delete(e.store.users, "bob")
	e.store.mu.Unlock()
	t.Run("consent by a removed user is refused", func(t *testing.T) {
		if got := b.decide(t, p, "allow", []string{"notes:read"}, false); got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
	})
	t.Run("a removed user's browser sees the login page again", func(t *testing.T) {
		if p := b.get(e.authorizeURL(a)); !isLoginPage(p) {
			t.Errorf("status %d; want the login page", p.status)
		}
	})
}

func TestCSRFAndHeaders(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))

	t.Run("pages refuse framing", func(t *testing.T) {
		if got := p.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("X-Frame-Options = %q; want DENY", got)
		}
		if got := p.header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("CSP = %q; want frame-ancestors 'none'", got)
		}
	})
	t.Run("session cookie is HttpOnly and SameSite=Lax", func(t *testing.T) {
		c := p.header.Get("Set-Cookie")
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") || strings.Contains(c, "Secure") {
			t.Errorf("Set-Cookie = %q", c)
		}
	})
	reqID := hiddenField(t, p.body, "request_id")
	good := hiddenField(t, p.body, "csrf_token")
	for _, tt := range []struct{ name, token string }{
		{"login without a CSRF token is rejected", ""},
		{"login with a wrong CSRF token is rejected", good[:len(good)-2] + "xx"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := b.post(e.url(loginPath), url.Values{"csrf_token": {tt.token}, "request_id": {reqID}, "username": {"alice"}, "password": {"correct horse"}})
			if got.status != http.StatusForbidden {
				t.Errorf("status %d; want 403", got.status)
			}
		})
	}
	t.Run("a CSRF token from another browser is rejected", func(t *testing.T) {
		got := e.browser().post(e.url(loginPath), url.Values{"csrf_token": {good}, "request_id": {reqID}, "username": {"alice"}, "password": {"correct horse"}})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
	})
	p = b.login(t, p, "alice", "correct horse")
	cReqID := hiddenField(t, p.body, "request_id")
	t.Run("consent with the login CSRF token is rejected", func(t *testing.T) {
		got := b.post(e.url(consentPath), url.Values{"csrf_token": {good}, "request_id": {cReqID}, "action": {"allow"}})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
	})
	t.Run("consent without a CSRF token is rejected", func(t *testing.T) {
		got := b.post(e.url(consentPath), url.Values{"request_id": {cReqID}, "action": {"allow"}})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
	})
	t.Run("the consent CSRF token is bound to its request", func(t *testing.T) {
		other := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		got := b.post(e.url(consentPath), url.Values{"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {hiddenField(t, other.body, "request_id")}, "action": {"allow"}})
		if got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
	})
}

func TestSecureCookieOverHTTPS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Issuer = "https://mcpd.example" })
	reg := e.registerPublic("http://127.0.0.1/cb")
	p := e.browser().get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", verifier: oauth2.GenerateVerifier()}))
	c := p.header.Get("Set-Cookie")
	for _, want := range []string{"__Host-mcpd_session=", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(c, want) {
			t.Errorf("Set-Cookie %q lacks %q", c, want)
		}
	}
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	start := func() page {
		return b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", verifier: oauth2.GenerateVerifier()}))
	}
	try := func(p page, user, pw string) page {
		return b.post(e.url(loginPath), url.Values{"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {hiddenField(t, p.body, "request_id")}, "username": {user}, "password": {pw}})
	}
	p1 := try(start(), "alice", "wrong")
	p2 := try(start(), "mallory", "wrong")
	t.Run("the message does not tell whether the user exists", func(t *testing.T) {
		if p1.status != http.StatusUnauthorized || p2.status != http.StatusUnauthorized {
			t.Fatalf("statuses %d, %d; want 401", p1.status, p2.status)
		}
		if !strings.Contains(p1.body, msgBadLogin) || !strings.Contains(p2.body, msgBadLogin) {
			t.Errorf("want %q on both pages", msgBadLogin)
		}
	})
	t.Run("failed logins are rate-limited per user", func(t *testing.T) {
		p := p1
		for range 5 {
			p = try(p, "alice", "wrong")
		}
		p = try(p, "alice", "correct horse")
		if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, msgLoginLocked) {
			t.Fatalf("status %d; want 429 with %q", p.status, msgLoginLocked)
		}
		e.clock.Advance(16 * 60 * 1e9)
		p = try(start(), "alice", "correct horse")
		if p.status != http.StatusSeeOther {
			t.Errorf("after the window: status %d; want 303", p.status)
		}
	})
	t.Run("failed logins are rate-limited per client address", func(t *testing.T) {
		b = e.browser()
		p := start()
		for i := range 20 {
			p = try(p, "user"+string(rune('a'+i)), "wrong")
		}
		p = try(p, "bob", "battery staple")
		if p.status != http.StatusTooManyRequests {
			t.Fatalf("status %d; want 429", p.status)
		}
	})
}

func TestVerifyRejects(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:8000/cb", "notes:read")
	for _, tt := range []struct{ name, token string }{
		{"an empty token is invalid", ""},
		{"a made-up token is invalid", "ory_at_made-up.token"},
		{"a token with a changed signature is invalid", tok.AccessToken[:len(tok.AccessToken)-3] + "abc"},
		{"a refresh token is not an access token", tok.RefreshToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.verify(tt.token); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Verify = %v; want ErrInvalidToken", err)
			}
		})
	}
	t.Run("an expired token is invalid", func(t *testing.T) {
		e.clock.Advance(61 * 60 * 1e9)
		if err := e.verify(tok.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Verify = %v; want ErrInvalidToken", err)
		}
	})
}

func TestConsentTampering(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb", "http://localhost/cb")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:5/cb", scope: "notes:read", verifier: v}))
	p = b.login(t, p, "alice", "correct horse")
	p = b.decide(t, p, "allow", []string{"notes:read", "notes:write", "admin"}, true)

	t.Run("posting a scope that was not requested, or is unknown, does not widen the grant", func(t *testing.T) {
		tok, err := e.oauthConfig(reg.ClientID, "", "http://127.0.0.1:5/cb", oauth2.AuthStyleInParams).Exchange(context.Background(), p.location(t).Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Extra("scope"); got != "notes:read" {
			t.Errorf("granted scope %q; want notes:read", got)
		}
	})
	t.Run("remembered consent does not cover another redirect host", func(t *testing.T) {
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://localhost:5/cb", scope: "notes:read", verifier: v}))
		if !isConsentPage(p) {
			t.Errorf("status %d; want the consent page", p.status)
		}
	})
	t.Run("remembered consent does not cover a scope that was posted but not requested", func(t *testing.T) {
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:5/cb", scope: "notes:read notes:write", verifier: v}))
		if !isConsentPage(p) {
			t.Errorf("status %d; want the consent page", p.status)
		}
	})
}
