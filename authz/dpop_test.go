package authz

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

// withDPoP turns DPoP on in an env's Config, with nonces when nonces is
// true.
func withDPoP(nonces bool, mod func(*Config)) func(*Config) {
	return func(cfg *Config) {
		now := cfg.Now
		var ns *dpop.Nonces
		if nonces {
			var err error
			if ns, err = dpop.NewNonces([]byte(strings.Repeat("n", 32)), time.Minute, now); err != nil {
				panic(err)
			}
		}
		c, err := dpop.New(dpop.Config{Replay: dpoptest.NewReplay(now), Nonces: ns, Now: now})
		if err != nil {
			panic(err)
		}
		cfg.DPoP = c
		if mod != nil {
			mod(cfg)
		}
	}
}

// dpopKey is a client's DPoP key (ES256).
type dpopKey struct {
	t testing.TB
	*dpoptest.Key
}

func newDPoPKey(t testing.TB) *dpopKey {
	return &dpopKey{t: t, Key: dpoptest.NewKey(t, jose.ES256)}
}

func (k *dpopKey) jkt() string { return k.JKT(k.t) }

// proof signs a proof for htm and htu, with the given extra claims.
func (k *dpopKey) proof(htm, htu string, iat time.Time, extra map[string]any) string {
	cl := dpoptest.Claims(htm, htu, iat)
	maps.Copy(cl, extra)
	return k.Sign(k.t, cl, nil)
}

// tokenProof is a fresh proof for e's token endpoint.
func (e *env) tokenProof(k *dpopKey) string {
	return k.proof(http.MethodPost, e.url("/token"), e.clock.Now(), nil)
}

// dpopToken posts form to /token with the DPoP header values proofs (none:
// a request without DPoP) and returns status, decoded JSON and headers.
func (e *env) dpopToken(form url.Values, basicID, basicSecret string, proofs ...string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url("/token"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("token answer %q: %v", b, err)
	}
	return resp.StatusCode, out, resp.Header
}

// codeForm authorizes client (with extra authorization parameters) and
// returns the form that exchanges the code.
func (e *env) codeForm(b *browser, clientID, redirect string, extra url.Values) url.Values {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	loc := e.authorize(b, authRequest{clientID: clientID, redirect: redirect, scope: "notes:read", verifier: v, extra: extra})
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {clientID}, "code_verifier": {v}}
}

// boundTo returns the thumbprint Verify reports for an access token, ""
// for a bearer token; it fails the test when the token does not verify.
func (e *env) boundTo(token string) string {
	e.t.Helper()
	ti, err := e.srv.Verify(context.Background(), token, nil)
	if err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
	jkt, _ := ti.Extra[ExtraJKT].(string)
	return jkt
}

func wantTokenError(t *testing.T, st int, out map[string]any, status int, code string) {
	t.Helper()
	if st != status || out["error"] != code {
		t.Fatalf("status %d, %v; want %d %s", st, out, status, code)
	}
}

func TestDPoPMetadata(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	resp, err := http.Get(e.url("/.well-known/oauth-authorization-server"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := jsonDecode(resp.Body, &md); err != nil {
		t.Fatal(err)
	}
	want := []any{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}
	if d := cmp.Diff(want, md["dpop_signing_alg_values_supported"]); d != "" {
		t.Errorf("dpop_signing_alg_values_supported (-want +got):\n%s", d)
	}
}

func TestDPoPAuthorizationCode(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	const redirect = "http://127.0.0.1:9/cb"
	reg := e.registerPublic(redirect)
	key := newDPoPKey(t)

	t.Run("a code exchanged with a proof yields a DPoP token bound to the key", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "", e.tokenProof(key))
		if st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("status %d, %v; want 200 with token_type DPoP", st, out)
		}
		if got := e.boundTo(out["access_token"].(string)); got != key.jkt() {
			t.Errorf("access token bound to %q; want %q", got, key.jkt())
		}
	})
	t.Run("a code exchanged without a proof yields a bearer token", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "")
		if st != http.StatusOK || !strings.EqualFold(out["token_type"].(string), "bearer") {
			t.Fatalf("status %d, %v; want 200 with token_type bearer", st, out)
		}
		if got := e.boundTo(out["access_token"].(string)); got != "" {
			t.Errorf("bearer token bound to %q", got)
		}
	})
	t.Run("an invalid proof fails the exchange with invalid_dpop_proof and leaves the code usable", func(t *testing.T) {
		form := e.codeForm(e.browser(), reg.ClientID, redirect, nil)
		wrongHTU := key.proof(http.MethodPost, e.url("/mcp"), e.clock.Now(), nil)
		st, out, _ := e.dpopToken(form, "", "", wrongHTU)
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		if st, out, _ := e.dpopToken(form, "", "", e.tokenProof(key)); st != http.StatusOK {
			t.Fatalf("exchange with a good proof after: %d %v", st, out)
		}
	})
	t.Run("a replayed proof fails with invalid_dpop_proof", func(t *testing.T) {
		p := e.tokenProof(key)
		if st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "", p); st != http.StatusOK {
			t.Fatalf("first use: %d %v", st, out)
		}
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "", p)
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("two DPoP headers fail with invalid_dpop_proof", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "", e.tokenProof(key), e.tokenProof(key))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
}

func TestDPoPCodeBinding(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	const redirect = "http://127.0.0.1:9/cb"
	reg := e.registerPublic(redirect)
	key, other := newDPoPKey(t), newDPoPKey(t)
	bound := url.Values{"dpop_jkt": {key.jkt()}}

	t.Run("a code bound by dpop_jkt is refused with another key", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, bound), "", "", e.tokenProof(other))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("a code bound by dpop_jkt is refused without a proof", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, bound), "", "")
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("a code bound by dpop_jkt is exchanged with that key", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, bound), "", "", e.tokenProof(key))
		if st != http.StatusOK || e.boundTo(out["access_token"].(string)) != key.jkt() {
			t.Fatalf("status %d, %v; want a token bound to the key", st, out)
		}
	})
	t.Run("a used code bound by dpop_jkt replayed without the key leaves the tokens alive", func(t *testing.T) {
		// fosite revokes what a code was exchanged for when the code comes
		// again; one bound to a key is refused before that, so whoever
		// lacks the key cannot revoke the holder's tokens with it.
		form := e.codeForm(e.browser(), reg.ClientID, redirect, bound)
		st, out, _ := e.dpopToken(form, "", "", e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("exchange: %d %v", st, out)
		}
		at := out["access_token"].(string)
		st, again, _ := e.dpopToken(form, "", "", e.tokenProof(other))
		wantTokenError(t, st, again, http.StatusBadRequest, "invalid_dpop_proof")
		st, again, _ = e.dpopToken(form, "", "")
		wantTokenError(t, st, again, http.StatusBadRequest, "invalid_dpop_proof")
		if err := e.verify(at); err != nil {
			t.Fatalf("the tokens died after a replay without the key: %v", err)
		}
		// The key's holder using the code twice is reuse, as without DPoP.
		st, again, _ = e.dpopToken(form, "", "", e.tokenProof(key))
		wantTokenError(t, st, again, http.StatusBadRequest, "invalid_grant")
		if err := e.verify(at); err == nil {
			t.Fatal("the tokens survived the reuse of their code by the key's holder")
		}
	})
	t.Run("a malformed dpop_jkt is an invalid_request error sent back to the client", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		loc := e.authorize(e.browser(), authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: v, extra: url.Values{"dpop_jkt": {"not-a-thumbprint"}}})
		if got := loc.Query().Get("error"); got != "invalid_request" {
			t.Fatalf("redirect %s; want error=invalid_request", loc)
		}
	})
}

func TestDPoPRefresh(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	const redirect = "http://127.0.0.1:9/cb"
	reg := e.registerPublic(redirect)
	key, other := newDPoPKey(t), newDPoPKey(t)
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {reg.ClientID}}
	}
	issue := func() map[string]any {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "", e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("code exchange: %d %v", st, out)
		}
		return out
	}

	t.Run("a public client's rotation with the same key keeps the binding", func(t *testing.T) {
		first := issue()
		st, out, _ := e.dpopToken(refreshForm(first["refresh_token"].(string)), "", "", e.tokenProof(key))
		if st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("refresh: %d %v; want 200 DPoP", st, out)
		}
		if got := e.boundTo(out["access_token"].(string)); got != key.jkt() {
			t.Errorf("new access token bound to %q; want %q", got, key.jkt())
		}
		// And the next rotation too: the binding travels with the grant.
		st, out, _ = e.dpopToken(refreshForm(out["refresh_token"].(string)), "", "", e.tokenProof(key))
		if st != http.StatusOK || e.boundTo(out["access_token"].(string)) != key.jkt() {
			t.Fatalf("second refresh: %d %v; want a token bound to the key", st, out)
		}
	})
	t.Run("a public client's refresh with another key fails and leaves the grant alive", func(t *testing.T) {
		first := issue()
		rt := first["refresh_token"].(string)
		st, out, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(other))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		if st, out, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(key)); st != http.StatusOK {
			t.Fatalf("refresh by the key's holder after: %d %v", st, out)
		}
	})
	t.Run("a public client's refresh without a proof fails", func(t *testing.T) {
		first := issue()
		st, out, _ := e.dpopToken(refreshForm(first["refresh_token"].(string)), "", "")
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("inside the grace window the same successor goes only to the same key", func(t *testing.T) {
		rt := issue()["refresh_token"].(string)
		st, first, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("refresh: %d %v", st, first)
		}
		st, again, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(key))
		if st != http.StatusOK || again["access_token"] != first["access_token"] {
			t.Fatalf("second refresh in the window: %d %v; want the first answer", st, again)
		}
		st, out, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(other))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		if err := e.verify(first["access_token"].(string)); err != nil {
			t.Errorf("the successor died after a refused replay: %v", err)
		}
	})
	t.Run("a rotated token replayed with another key after the window does not revoke the grant", func(t *testing.T) {
		rt := issue()["refresh_token"].(string)
		st, next, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("refresh: %d %v", st, next)
		}
		e.clock.Advance(2 * time.Minute)
		st, out, _ := e.dpopToken(refreshForm(rt), "", "", e.tokenProof(other))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		if st, out, _ := e.dpopToken(refreshForm(next["refresh_token"].(string)), "", "", e.tokenProof(key)); st != http.StatusOK {
			t.Fatalf("the grant died: refresh of its current token: %d %v", st, out)
		}
	})
	t.Run("a bearer grant refreshed with a proof becomes DPoP-bound", func(t *testing.T) {
		st, out, _ := e.dpopToken(e.codeForm(e.browser(), reg.ClientID, redirect, nil), "", "")
		if st != http.StatusOK {
			t.Fatal(st, out)
		}
		st, out, _ = e.dpopToken(refreshForm(out["refresh_token"].(string)), "", "", e.tokenProof(key))
		if st != http.StatusOK || e.boundTo(out["access_token"].(string)) != key.jkt() {
			t.Fatalf("refresh: %d %v; want a token bound to the key", st, out)
		}
	})
}

func TestDPoPConfidentialClient(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	reg := e.registerConfidential("notes:read")
	key := newDPoPKey(t)
	cc := url.Values{"grant_type": {"client_credentials"}}

	t.Run("client_credentials with a proof yields a DPoP token", func(t *testing.T) {
		st, out, _ := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, e.tokenProof(key))
		if st != http.StatusOK || out["token_type"] != "DPoP" || e.boundTo(out["access_token"].(string)) != key.jkt() {
			t.Fatalf("%d %v; want a DPoP token bound to the key", st, out)
		}
	})
	t.Run("introspection reports token_type DPoP and cnf.jkt", func(t *testing.T) {
		_, out, _ := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, e.tokenProof(key))
		req, _ := http.NewRequest(http.MethodPost, e.url("/introspect"), strings.NewReader(url.Values{"token": {out["access_token"].(string)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(reg.ClientID), url.QueryEscape(reg.ClientSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		if err := jsonDecode(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got["active"] != true || got["token_type"] != "DPoP" || cmp.Diff(map[string]any{"jkt": key.jkt()}, got["cnf"]) != "" {
			t.Fatalf("introspection %v; want active, token_type DPoP, cnf.jkt %s", got, key.jkt())
		}
	})
}

func TestDPoPRequired(t *testing.T) {
	t.Run("a client registered with dpop_bound_access_tokens must send a proof", func(t *testing.T) {
		e := newEnv(t, withDPoP(false, nil))
		var rr map[string]any
		resp := e.postJSON("/register", `{"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"dpop_bound_access_tokens":true}`, &rr)
		if resp.StatusCode != http.StatusCreated || rr["dpop_bound_access_tokens"] != true {
			t.Fatalf("register: %d %v; want 201 echoing dpop_bound_access_tokens", resp.StatusCode, rr)
		}
		id, secret := rr["client_id"].(string), rr["client_secret"].(string)
		st, out, _ := e.dpopToken(url.Values{"grant_type": {"client_credentials"}}, id, secret)
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		if st, out, _ := e.dpopToken(url.Values{"grant_type": {"client_credentials"}}, id, secret, e.tokenProof(newDPoPKey(t))); st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("with a proof: %d %v", st, out)
		}
	})
	t.Run("with RequireDPoP every token request needs a proof", func(t *testing.T) {
		e := newEnv(t, withDPoP(false, func(c *Config) { c.RequireDPoP = true }))
		reg := e.registerConfidential("notes:read")
		st, out, _ := e.dpopToken(url.Values{"grant_type": {"client_credentials"}}, reg.ClientID, reg.ClientSecret)
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("without a checker dpop_bound_access_tokens cannot be registered", func(t *testing.T) {
		e := newEnv(t, nil)
		var rr map[string]any
		if resp := e.postJSON("/register", `{"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"dpop_bound_access_tokens":true}`, &rr); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("register: %d %v; want 400", resp.StatusCode, rr)
		}
	})
}

func TestDPoPNonce(t *testing.T) {
	e := newEnv(t, withDPoP(true, nil))
	reg := e.registerConfidential("notes:read")
	key := newDPoPKey(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	st, out, h := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, e.tokenProof(key))
	wantTokenError(t, st, out, http.StatusBadRequest, "use_dpop_nonce")
	nonce := h.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	t.Run("the retry with the server's nonce succeeds and carries a nonce", func(t *testing.T) {
		p := key.proof(http.MethodPost, e.url("/token"), e.clock.Now(), map[string]any{"nonce": nonce})
		st, out, h := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, p)
		if st != http.StatusOK || out["token_type"] != "DPoP" || h.Get("DPoP-Nonce") == "" {
			t.Fatalf("%d %v, DPoP-Nonce %q; want 200 DPoP with a nonce header", st, out, h.Get("DPoP-Nonce"))
		}
	})
	t.Run("a nonce two rotations old gets use_dpop_nonce again", func(t *testing.T) {
		e.clock.Advance(2 * time.Minute)
		p := key.proof(http.MethodPost, e.url("/token"), e.clock.Now(), map[string]any{"nonce": nonce})
		st, out, h := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, p)
		wantTokenError(t, st, out, http.StatusBadRequest, "use_dpop_nonce")
		if h.Get("DPoP-Nonce") == nonce || h.Get("DPoP-Nonce") == "" {
			t.Errorf("DPoP-Nonce %q; want a new nonce", h.Get("DPoP-Nonce"))
		}
	})
}

func TestDPoPConfidentialRefresh(t *testing.T) {
	e := newEnv(t, withDPoP(false, nil))
	const redirect = "http://127.0.0.1:9/cb"
	reg := e.register(`{"client_name":"Web app","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"]}`)
	key, other := newDPoPKey(t), newDPoPKey(t)
	issue := func() string {
		form := e.codeForm(e.browser(), reg.ClientID, redirect, nil)
		form.Del("client_id")
		st, out, _ := e.dpopToken(form, reg.ClientID, reg.ClientSecret, e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("code exchange: %d %v", st, out)
		}
		return out["refresh_token"].(string)
	}
	refresh := func(rt string, proofs ...string) (int, map[string]any) {
		st, out, _ := e.dpopToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, reg.ClientID, reg.ClientSecret, proofs...)
		return st, out
	}
	t.Run("a confidential client may move its tokens to a new key", func(t *testing.T) {
		st, out := refresh(issue(), e.tokenProof(other))
		if st != http.StatusOK || e.boundTo(out["access_token"].(string)) != other.jkt() {
			t.Fatalf("%d %v; want a token bound to the new key", st, out)
		}
	})
	t.Run("a confidential client's DPoP grant refreshed without a proof fails", func(t *testing.T) {
		st, out := refresh(issue())
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
	t.Run("inside the grace window the successor goes only to the key it is bound to", func(t *testing.T) {
		rt := issue()
		st, first := refresh(rt, e.tokenProof(key))
		if st != http.StatusOK {
			t.Fatalf("refresh: %d %v", st, first)
		}
		st, out := refresh(rt, e.tokenProof(other))
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
		st, again := refresh(rt, e.tokenProof(key))
		if st != http.StatusOK || again["access_token"] != first["access_token"] {
			t.Fatalf("replay with the same key: %d %v; want the first answer", st, again)
		}
	})
}

// brokenReplay is a ReplayCache that always fails: the token endpoint must
// not need one.
type brokenReplay struct{}

func (brokenReplay) Remember(context.Context, string, time.Time) error {
	return io.ErrUnexpectedEOF
}

// TestDPoPTokenProofRecord: the token endpoint spends a proof's jti in the
// store, in the transaction that issues the tokens (so the record is as
// durable as they are), and only when it issues them: a request refused
// for its client or grant writes nothing.
func TestDPoPTokenProofRecord(t *testing.T) {
	e := newEnv(t, func(cfg *Config) {
		c, err := dpop.New(dpop.Config{Replay: brokenReplay{}, Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP = c
	})
	reg := e.registerConfidential("notes:read")
	key := newDPoPKey(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	records := func() int {
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		return len(e.store.proofJTIs)
	}
	proof := e.tokenProof(key)

	t.Run("a request refused for its client records nothing", func(t *testing.T) {
		st, out, _ := e.dpopToken(cc, reg.ClientID, "wrong-secret", proof)
		wantTokenError(t, st, out, http.StatusUnauthorized, "invalid_client")
		if n := records(); n != 0 {
			t.Fatalf("%d proof records after a refused request; want 0", n)
		}
	})
	t.Run("the request that gets tokens records the proof in the store", func(t *testing.T) {
		st, out, _ := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, proof)
		if st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("%d %v; want a DPoP token", st, out)
		}
		if n := records(); n != 1 {
			t.Fatalf("%d proof records; want 1", n)
		}
	})
	t.Run("the same proof again is refused", func(t *testing.T) {
		st, out, _ := e.dpopToken(cc, reg.ClientID, reg.ClientSecret, proof)
		wantTokenError(t, st, out, http.StatusBadRequest, "invalid_dpop_proof")
	})
}
