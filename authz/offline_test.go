package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestOfflineAccess is SEP-2207: offline_access, when a client asks for
// it, is accepted and means "refresh token"; it is never required, never
// advertised, and never reaches the resource server.
func TestOfflineAccess(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	const redirect = "http://127.0.0.1:7001/cb"

	// exchange runs login and consent (allowing scopes) for a request
	// asking for scope and returns the token response.
	exchange := func(t *testing.T, b *browser, scope string, allow []string) map[string]any {
		t.Helper()
		v := oauth2.GenerateVerifier()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: scope, verifier: v}))
		if isLoginPage(p) {
			p = b.login(t, p, "alice", "correct horse")
		}
		if isConsentPage(p) {
			p = b.decide(t, p, "allow", allow, false)
		}
		code := p.location(t).Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %s", p.location(t))
		}
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {reg.ClientID},
			"redirect_uri": {redirect}, "code_verifier": {v}}, "", "")
		if st != http.StatusOK {
			t.Fatalf("code exchange: status %d %v", st, out)
		}
		return out
	}

	t.Run("the consent page says what offline_access means and offers no checkbox for it", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read offline_access", verifier: oauth2.GenerateVerifier()}))
		p = b.login(t, p, "alice", "correct horse")
		if !isConsentPage(p) {
			t.Fatalf("status %d: %.300s", p.status, p.body)
		}
		if !strings.Contains(p.body, "stay connected while you are away") || !strings.Contains(p.body, "90 days") {
			t.Errorf("consent page does not explain offline_access: %s", p.body)
		}
		if strings.Contains(p.body, `value="offline_access"`) {
			t.Errorf("consent page has a checkbox for offline_access")
		}
	})

	var withOffline map[string]any
	t.Run("a client that asks for offline_access is granted it, with a refresh token", func(t *testing.T) {
		withOffline = exchange(t, e.browser(), "notes:read offline_access", []string{"notes:read"})
		if diff := cmp.Diff("notes:read offline_access", withOffline["scope"]); diff != "" {
			t.Errorf("scope (-want +got):\n%s", diff)
		}
		if rt, _ := withOffline["refresh_token"].(string); rt == "" {
			t.Errorf("no refresh_token: %v", withOffline)
		}
	})

	t.Run("a client that does not ask gets a refresh token all the same", func(t *testing.T) {
		out := exchange(t, e.browser(), "notes:read", []string{"notes:read"})
		if diff := cmp.Diff("notes:read", out["scope"]); diff != "" {
			t.Errorf("scope (-want +got):\n%s", diff)
		}
		if rt, _ := out["refresh_token"].(string); rt == "" {
			t.Errorf("no refresh_token: %v", out)
		}
	})

	t.Run("the resource server never sees offline_access", func(t *testing.T) {
		info, err := e.srv.Verify(context.Background(), withOffline["access_token"].(string), nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"notes:read"}, info.Scopes); diff != "" {
			t.Errorf("TokenInfo.Scopes (-want +got):\n%s", diff)
		}
	})

	t.Run("a refresh may name offline_access again and keeps it", func(t *testing.T) {
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {withOffline["refresh_token"].(string)},
			"client_id": {reg.ClientID}, "scope": {"notes:read offline_access"}}, "", "")
		if st != http.StatusOK {
			t.Fatalf("refresh: status %d %v", st, out)
		}
		if diff := cmp.Diff("notes:read offline_access", out["scope"]); diff != "" {
			t.Errorf("scope (-want +got):\n%s", diff)
		}
	})

	t.Run("a remembered consent is not asked again only because offline_access is added", func(t *testing.T) {
		b := e.browser()
		v := oauth2.GenerateVerifier()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:write", verifier: v}))
		p = b.login(t, p, "alice", "correct horse")
		b.decide(t, p, "allow", []string{"notes:write"}, true)
		p = b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:write offline_access", verifier: v}))
		if p.status != http.StatusSeeOther || p.location(t).Query().Get("code") == "" {
			t.Errorf("status %d: %.300s; want a code at once", p.status, p.body)
		}
	})

	t.Run("a client_credentials client may ask for offline_access and gets no refresh token", func(t *testing.T) {
		cc := e.registerConfidential("notes:read")
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes:read offline_access"}}, cc.ClientID, cc.ClientSecret)
		if st != http.StatusOK {
			t.Fatalf("status %d %v", st, out)
		}
		if diff := cmp.Diff("notes:read", out["scope"]); diff != "" {
			t.Errorf("scope (-want +got):\n%s", diff)
		}
		if _, ok := out["refresh_token"]; ok {
			t.Errorf("a client_credentials token came with a refresh token")
		}
	})

	t.Run("offline_access is never advertised", func(t *testing.T) {
		resp, err := http.Get(e.url("/.well-known/oauth-authorization-server"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md struct {
			ScopesSupported []string `json:"scopes_supported"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatal(err)
		}
		for _, sc := range md.ScopesSupported {
			if sc == scopeOfflineAccess {
				t.Errorf("scopes_supported %v lists offline_access", md.ScopesSupported)
			}
		}
	})
}
