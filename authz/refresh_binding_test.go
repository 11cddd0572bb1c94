package authz

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/ory/fosite"
)

func TestRefreshBinding(t *testing.T) {
	ctx := context.Background()
	// grace 0: every second use of a refresh token is reuse.
	setup := func(t *testing.T) (*env, regResponse) {
		e := newEnv(t, func(c *Config) { c.RefreshGrace = 0 })
		return e, e.registerPublic("http://127.0.0.1/cb")
	}
	grant := func(e *env, reg regResponse) (access, refresh string) {
		tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
		return tok.AccessToken, tok.RefreshToken
	}
	sigOf := func(e *env, token string) string { return e.srv.strategy.RefreshTokenSignature(ctx, token) }
	// forget drops a refresh token's record, as the store does once a grant
	// has rotated past it.
	forget := func(t *testing.T, e *env, token string) {
		t.Helper()
		if err := e.store.DeleteRefreshTokenSession(ctx, sigOf(e, token)); err != nil {
			t.Fatal(err)
		}
	}
	rotate := func(t *testing.T, e *env, reg regResponse, token string) (access, refresh string) {
		t.Helper()
		st, out := e.refresh(reg.ClientID, token)
		if st != http.StatusOK {
			t.Fatalf("refresh: %d %v", st, out)
		}
		return out["access_token"].(string), out["refresh_token"].(string)
	}

	t.Run("a refresh token names its grant; fosite's signature and record are unchanged", func(t *testing.T) {
		e, reg := setup(t)
		_, rt := grant(e, reg)
		plain, b, ok := strings.Cut(rt, bindingSep)
		if !ok || b == "" || !strings.HasPrefix(plain, refreshTokenPrefix) {
			t.Fatalf("refresh token %q has no binding", rt)
		}
		if sigOf(e, rt) != e.srv.strategy.HMACSHAStrategy.RefreshTokenSignature(ctx, plain) {
			t.Error("the signature of the bound token differs from fosite's")
		}
		req, err := e.store.GetRefreshTokenSession(ctx, sigOf(e, rt), nil)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := e.srv.strategy.boundGrant(ctx, rt); !ok || g != req.GetID() {
			t.Errorf("boundGrant = %q, %v; want %q, true", g, ok, req.GetID())
		}
	})

	t.Run("reuse of a rotated token the store forgot revokes the grant", func(t *testing.T) {
		e, reg := setup(t)
		_, rt1 := grant(e, reg)
		at2, rt2 := rotate(t, e, reg, rt1)
		forget(t, e, rt1)
		st, out := e.refresh(reg.ClientID, rt1)
		if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v; want 400 invalid_grant", st, out)
		}
		if err := e.verify(at2); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("the grant's access token after the reuse: %v; want ErrInvalidToken", err)
		}
		if st, out := e.refresh(reg.ClientID, rt2); st == http.StatusOK {
			t.Errorf("the grant's refresh token after the reuse still works: %v", out)
		}
	})

	t.Run("a forged binding revokes nothing", func(t *testing.T) {
		e, reg := setup(t)
		_, rt1 := grant(e, reg)
		rotate(t, e, reg, rt1)
		forget(t, e, rt1)
		victimAT, victimRT := grant(e, reg)
		victim, err := e.store.GetRefreshTokenSession(ctx, sigOf(e, victimRT), nil)
		if err != nil {
			t.Fatal(err)
		}
		plain, b, _ := strings.Cut(rt1, bindingSep)
		raw, _ := base64.RawURLEncoding.DecodeString(b)
		forged := plain + bindingSep + base64.RawURLEncoding.EncodeToString(append(raw[:bindingMACSize:bindingMACSize], victim.GetID()...))
		if st, out := e.refresh(reg.ClientID, forged); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("forged token: %d %v; want 400 invalid_grant", st, out)
		}
		if err := e.verify(victimAT); err != nil {
			t.Errorf("the other grant's access token after a forged binding: %v; want it valid", err)
		}
	})

	t.Run("a forgotten token without a binding, as release v1 issued, revokes nothing", func(t *testing.T) {
		e, reg := setup(t)
		_, rt1 := grant(e, reg)
		at2, _ := rotate(t, e, reg, rt1)
		forget(t, e, rt1)
		if st, out := e.refresh(reg.ClientID, unbound(rt1)); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("unbound forgotten token: %d %v; want 400 invalid_grant", st, out)
		}
		if err := e.verify(at2); err != nil {
			t.Errorf("the grant's access token: %v; want it valid", err)
		}
	})

	t.Run("a token that was never issued is invalid_grant and revokes nothing", func(t *testing.T) {
		e, reg := setup(t)
		at, _ := grant(e, reg)
		for _, tok := range []string{"ory_rt_nope.nope~" + base64.RawURLEncoding.EncodeToString(make([]byte, 40)), "garbage~", "~"} {
			if st, out := e.refresh(reg.ClientID, tok); st != http.StatusBadRequest {
				t.Errorf("refresh with %q: %d %v; want 400", tok, st, out)
			}
		}
		if err := e.verify(at); err != nil {
			t.Errorf("access token: %v; want it valid", err)
		}
	})

	t.Run("a forgotten token of a deleted client is still invalid_client, so the client registers again", func(t *testing.T) {
		e, reg := setup(t)
		_, rt1 := grant(e, reg)
		rotate(t, e, reg, rt1)
		forget(t, e, rt1)
		if err := e.store.DeleteClient(ctx, reg.ClientID); err != nil {
			t.Fatal(err)
		}
		if st, out := e.refresh(reg.ClientID, rt1); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("refresh: %d %v; want 401 invalid_client", st, out)
		}
	})

	t.Run("revocation and introspection take a bound refresh token", func(t *testing.T) {
		e, reg := setup(t)
		at, rt := grant(e, reg)
		resp, err := http.PostForm(e.url("/revoke"), url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {reg.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %s", resp.Status)
		}
		if err := e.verify(at); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("access token after revoking the bound refresh token: %v; want ErrInvalidToken", err)
		}
		if _, err := e.store.GetRefreshTokenSession(ctx, sigOf(e, rt), nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("revoked refresh token: %v; want ErrInactiveToken", err)
		}
	})
}
