package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestCodeReuse(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	redirect := "http://127.0.0.1:9000/cb"
	v := oauth2.GenerateVerifier()
	loc := e.authorize(e.browser(), authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: v})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {v}}
	st, first, _ := e.tokenRequest(form, "", "")
	if st != http.StatusOK {
		t.Fatalf("first exchange: %d %v", st, first)
	}
	st, second, _ := e.tokenRequest(form, "", "")
	t.Run("a reused code is refused", func(t *testing.T) {
		if st != http.StatusBadRequest || second["error"] != "invalid_grant" {
			t.Errorf("status %d %v; want 400 invalid_grant", st, second)
		}
	})
	t.Run("a reused code revokes the tokens it issued", func(t *testing.T) {
		if err := e.verify(first["access_token"].(string)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("access token after code reuse: Verify = %v; want ErrInvalidToken", err)
		}
		if st, out := e.refresh(reg.ClientID, first["refresh_token"].(string)); st == http.StatusOK {
			t.Errorf("refresh token after code reuse still works: %v", out)
		}
	})
}

// gatedCodeStore holds every invalidation of a code and deletion of its
// PKCE data until gateSize of a kind are waiting (or a short timeout
// passes), so parallel exchanges of one code have all read it before any
// of them uses it up.
type gatedCodeStore struct {
	*memStore
	invalidations, pkceDeletes *gate
}

const gateSize = 4

type gate struct {
	mu      sync.Mutex
	arrived int
}

// wait lets callers through in groups of gateSize, or alone after 50ms.
func (g *gate) wait() {
	g.mu.Lock()
	g.arrived++
	want := (g.arrived + gateSize - 1) / gateSize * gateSize
	g.mu.Unlock()
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		n := g.arrived
		g.mu.Unlock()
		if n >= want {
			return
		}
	}
}

func (s gatedCodeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	s.invalidations.wait()
	return s.memStore.InvalidateAuthorizeCodeSession(ctx, sig)
}

func (s gatedCodeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	s.pkceDeletes.wait()
	return s.memStore.DeletePKCERequestSession(ctx, sig)
}

func TestConcurrentCodeExchange(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Storage = gatedCodeStore{memStore: c.Storage.(*memStore), invalidations: &gate{}, pkceDeletes: &gate{}}
	})
	reg := e.registerPublic("http://127.0.0.1/cb")
	redirect := "http://127.0.0.1:9000/cb"
	v := oauth2.GenerateVerifier()
	loc := e.authorize(e.browser(), authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: v})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {v}}

	t.Run("one code exchanged in parallel issues tokens at most once and the rest are invalid_grant", func(t *testing.T) {
		const n = gateSize
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], _, _ = e.tokenRequest(form, "", "")
			}()
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			if st == http.StatusOK {
				ok++
			}
			if st >= 500 {
				t.Errorf("an exchange failed with %d (statuses %v); want 200 or 400", st, statuses)
			}
		}
		if ok > 1 {
			t.Errorf("%d exchanges of one code succeeded (statuses %v); want at most 1", ok, statuses)
		}
	})
}

func TestPKCEAtTokenEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	redirect := "http://127.0.0.1:9000/cb"
	v := oauth2.GenerateVerifier()
	loc := e.authorize(e.browser(), authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: v})
	st, out, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {oauth2.GenerateVerifier()}}, "", "")
	if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("wrong code_verifier: status %d %v; want 400 invalid_grant", st, out)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"unknown client_id gets 401 invalid_client", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"gone"}, "code_verifier": {"v"}}, 401, "invalid_client"},
		{"unknown client refreshing gets 401 invalid_client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"gone"}}, 401, "invalid_client"},
		{"a public client cannot use client_credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {reg.ClientID}}, 400, "invalid_grant"},
		{"a foreign resource is invalid_target", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {reg.ClientID}, "resource": {"https://other.example/"}}, 400, "invalid_target"},
		{"an unknown grant type is unsupported_grant_type", url.Values{"grant_type": {"password"}, "client_id": {reg.ClientID}, "username": {"alice"}, "password": {"correct horse"}}, 400, "unsupported_grant_type"},
		{"the implicit grant is unsupported_grant_type", url.Values{"grant_type": {"implicit"}, "client_id": {reg.ClientID}}, 400, "unsupported_grant_type"},
		{"a missing grant_type is invalid_request", url.Values{"client_id": {reg.ClientID}}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, hdr := e.tokenRequest(tt.form, "", "")
			if st != tt.wantStatus || out["error"] != tt.wantError {
				t.Errorf("status %d error %v; want %d %s", st, out["error"], tt.wantStatus, tt.wantError)
			}
			if got := hdr.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", got)
			}
		})
	}
}

func TestRefreshGrace(t *testing.T) {
	setup := func(t *testing.T, grace time.Duration) (*env, regResponse, *oauth2.Token) {
		e := newEnv(t, func(c *Config) { c.RefreshGrace = grace })
		reg := e.registerPublic("http://127.0.0.1/cb")
		return e, reg, e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
	}

	t.Run("refresh token reused within the grace window returns the same successor", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		st1, a := e.refresh(reg.ClientID, tok.RefreshToken)
		e.clock.Advance(30 * time.Second)
		st2, b := e.refresh(reg.ClientID, tok.RefreshToken)
		if st1 != 200 || st2 != 200 {
			t.Fatalf("statuses %d %d: %v %v", st1, st2, a, b)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("second response differs (-first +second):\n%s", diff)
		}
		if err := e.verify(a["access_token"].(string)); err != nil {
			t.Errorf("successor access token: %v", err)
		}
	})

	t.Run("refresh token reused after grace revokes the grant", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		st, next := e.refresh(reg.ClientID, tok.RefreshToken)
		if st != 200 {
			t.Fatalf("refresh: %d %v", st, next)
		}
		e.clock.Advance(61 * time.Second)
		st, out := e.refresh(reg.ClientID, tok.RefreshToken)
		if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse: status %d %v; want 400 invalid_grant", st, out)
		}
		if err := e.verify(next["access_token"].(string)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("successor access token after reuse: Verify = %v; want ErrInvalidToken", err)
		}
		if st, out := e.refresh(reg.ClientID, next["refresh_token"].(string)); st == http.StatusOK {
			t.Errorf("successor refresh token after reuse still works: %v", out)
		}
	})

	t.Run("with grace 0 any reuse revokes the grant", func(t *testing.T) {
		e, reg, tok := setup(t, 0)
		_, next := e.refresh(reg.ClientID, tok.RefreshToken)
		if st, _ := e.refresh(reg.ClientID, tok.RefreshToken); st == http.StatusOK {
			t.Fatalf("reuse with grace 0 succeeded")
		}
		if err := e.verify(next["access_token"].(string)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("successor access token: Verify = %v; want ErrInvalidToken", err)
		}
	})

	t.Run("two concurrent refreshes inside the window get the same successor", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var outs []map[string]any
		var statuses []int
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, out, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {reg.ClientID}}, "", "")
				mu.Lock()
				defer mu.Unlock()
				outs = append(outs, out)
				statuses = append(statuses, st)
			}()
		}
		wg.Wait()
		if diff := cmp.Diff([]int{200, 200}, statuses); diff != "" {
			t.Fatalf("statuses (-want +got):\n%s\n%v", diff, outs)
		}
		if diff := cmp.Diff(outs[0], outs[1]); diff != "" {
			t.Errorf("responses differ:\n%s", diff)
		}
		if err := e.verify(outs[0]["access_token"].(string)); err != nil {
			t.Errorf("successor access token: %v", err)
		}
	})

	t.Run("another client cannot replay a successor", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		other := e.registerPublic("http://127.0.0.1/cb")
		if st, _ := e.refresh(reg.ClientID, tok.RefreshToken); st != 200 {
			t.Fatal("refresh failed")
		}
		if st, out := e.refresh(other.ClientID, tok.RefreshToken); st == http.StatusOK {
			t.Errorf("another client got tokens: %v", out)
		}
	})

	t.Run("a foreign resource is invalid_target inside the grace window too", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		if st, _ := e.refresh(reg.ClientID, tok.RefreshToken); st != 200 {
			t.Fatal("refresh failed")
		}
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {reg.ClientID}, "resource": {"https://other.example/mcp"}}, "", "")
		if st != http.StatusBadRequest || out["error"] != "invalid_target" {
			t.Errorf("status %d %v; want 400 invalid_target", st, out)
		}
	})

	t.Run("a refresh asking for a known scope not granted is invalid_scope, inside the window too; unknown ones are dropped", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		wider := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {reg.ClientID}, "scope": {"notes:read notes:write"}}
		st, out, _ := e.tokenRequest(wider, "", "")
		if st != http.StatusBadRequest || out["error"] != "invalid_scope" {
			t.Errorf("first refresh: status %d %v; want 400 invalid_scope", st, out)
		}
		same := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {reg.ClientID}, "scope": {"notes:read offline_access"}}
		if st, out, _ := e.tokenRequest(same, "", ""); st != http.StatusOK || out["scope"] != "notes:read" {
			t.Fatalf("refresh with the granted scope and an unknown one: status %d %v; want 200 notes:read", st, out)
		}
		st, out, _ = e.tokenRequest(wider, "", "")
		if st != http.StatusBadRequest || out["error"] != "invalid_scope" {
			t.Errorf("replay inside the window: status %d %v; want 400 invalid_scope", st, out)
		}
	})

	t.Run("a successor revoked inside the window is not replayed", func(t *testing.T) {
		e, reg, tok := setup(t, time.Minute)
		st, next := e.refresh(reg.ClientID, tok.RefreshToken)
		if st != 200 {
			t.Fatalf("refresh: %d %v", st, next)
		}
		resp, err := http.PostForm(e.url("/revoke"), url.Values{"token": {next["refresh_token"].(string)}, "token_type_hint": {"refresh_token"}, "client_id": {reg.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke status %d", resp.StatusCode)
		}
		if st, out := e.refresh(reg.ClientID, tok.RefreshToken); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("replay after revoke: status %d %v; want 400 invalid_grant", st, out)
		}
	})

	t.Run("refresh lifetime is capped by the maximum", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RefreshTokenMaxLifespan = time.Hour })
		reg := e.registerPublic("http://127.0.0.1/cb")
		tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
		req, err := e.store.GetRefreshTokenSession(context.Background(), e.srv.strategy.RefreshTokenSignature(context.Background(), tok.RefreshToken), nil)
		if err != nil {
			t.Fatal(err)
		}
		exp := req.GetSession().GetExpiresAt("refresh_token")
		if exp.After(e.clock.Now().Add(time.Hour + time.Minute)) {
			t.Errorf("refresh token expires at %v; want within an hour of %v", exp, e.clock.Now())
		}
	})
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil)
	reg := e.registerConfidential("notes:read api:call")
	for _, tt := range []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"client_secret_basic works", oauth2.AuthStyleInHeader},
		{"client_secret_post works", oauth2.AuthStyleInParams},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc := clientcredentials.Config{ClientID: reg.ClientID, ClientSecret: reg.ClientSecret, TokenURL: e.url("/token"), AuthStyle: tt.style}
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			info, err := e.srv.Verify(context.Background(), tok.AccessToken, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := &auth.TokenInfo{UserID: "client:" + reg.ClientID, Scopes: []string{"notes:read", "api:call"}, Expiration: info.Expiration, Extra: map[string]any{"client_id": reg.ClientID}}
			if diff := cmp.Diff(want, info); diff != "" {
				t.Errorf("TokenInfo (-want +got):\n%s", diff)
			}
			if tok.RefreshToken != "" {
				t.Errorf("client_credentials issued a refresh token")
			}
		})
	}
	t.Run("only registered scopes are granted", func(t *testing.T) {
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes:write"}}, reg.ClientID, reg.ClientSecret)
		if st != http.StatusBadRequest || out["error"] != "invalid_scope" {
			t.Errorf("status %d %v; want 400 invalid_scope", st, out)
		}
	})
	t.Run("a wrong secret gets 401 invalid_client", func(t *testing.T) {
		st, out, hdr := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, reg.ClientID, "wrong")
		if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("status %d %v; want 401 invalid_client", st, out)
		}
		if hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("no WWW-Authenticate on a Basic auth failure")
		}
	})
	t.Run("the secret is stored hashed", func(t *testing.T) {
		c := e.store.client(reg.ClientID)
		if len(c.SecretHash) == 0 || strings.Contains(string(c.SecretHash), reg.ClientSecret) {
			t.Errorf("secret hash %q", c.SecretHash)
		}
	})
}

func TestRevokeAndIntrospect(t *testing.T) {
	e := newEnv(t, nil)
	pub := e.registerPublic("http://127.0.0.1/cb")
	conf := e.registerConfidential("notes:read")
	tok := e.codeFlow(e.browser(), pub.ClientID, "http://127.0.0.1:9200/cb", "notes:read")

	introspect := func(id, secret, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.url("/introspect"), strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = jsonDecode(resp.Body, &out)
		return resp.StatusCode, out
	}
	t.Run("introspection reports the audience to a confidential client", func(t *testing.T) {
		st, out := introspect(conf.ClientID, conf.ClientSecret, tok.AccessToken)
		if st != 200 {
			t.Fatalf("status %d %v", st, out)
		}
		got := map[string]any{"active": out["active"], "aud": out["aud"], "client_id": out["client_id"], "sub": out["sub"], "scope": out["scope"]}
		want := map[string]any{"active": true, "aud": []any{e.url("/mcp")}, "client_id": pub.ClientID, "sub": "alice", "scope": "notes:read"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("introspection refuses public clients", func(t *testing.T) {
		form := url.Values{"token": {tok.AccessToken}, "client_id": {pub.ClientID}}
		resp, err := http.PostForm(e.url("/introspect"), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d; want 401", resp.StatusCode)
		}
	})
	t.Run("revoking the refresh token kills the access token at once", func(t *testing.T) {
		resp, err := http.PostForm(e.url("/revoke"), url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {pub.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke status %d", resp.StatusCode)
		}
		if err := e.verify(tok.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Verify after revoke = %v; want ErrInvalidToken", err)
		}
		st, out := introspect(conf.ClientID, conf.ClientSecret, tok.AccessToken)
		if st != 200 || out["active"] != false {
			t.Errorf("introspection after revoke: %d %v; want active false", st, out)
		}
	})
}
