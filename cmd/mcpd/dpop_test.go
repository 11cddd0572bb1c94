package main

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

// dpopKey is a DPoP client key (ES256) that signs proofs.
type dpopKey struct {
	t *testing.T
	*dpoptest.Key
}

func newDPoPKey(t *testing.T) *dpopKey {
	return &dpopKey{t: t, Key: dpoptest.NewKey(t, jose.ES256)}
}

func (k *dpopKey) jkt() string { return k.JKT(k.t) }

// claims are a proof's claims for htm, htu and (when not empty) token.
func (k *dpopKey) claims(htm, htu, token string) map[string]any {
	cl := dpoptest.Claims(htm, htu, time.Now())
	if token != "" {
		cl["ath"] = dpoptest.ATH(token)
	}
	return cl
}

// sign signs claims as a proof; headers replace or (nil) drop header
// parameters; signer, when not nil, signs instead of k (k's key stays
// in the jwk header).
func (k *dpopKey) sign(cl map[string]any, headers map[jose.HeaderKey]any, signer *dpopKey) string {
	k.t.Helper()
	if signer == nil {
		return k.Sign(k.t, cl, headers)
	}
	h := map[jose.HeaderKey]any{"jwk": k.PublicJWK()}
	maps.Copy(h, headers)
	return signer.Sign(k.t, cl, h)
}

func (k *dpopKey) proof(htm, htu, token string) string {
	return k.sign(k.claims(htm, htu, token), nil, nil)
}

// dpopTransport presents a DPoP-bound token with a fresh proof on every
// request, and answers a use_dpop_nonce challenge once with the nonce
// given, as RFC 9449 §9 clients do.
type dpopTransport struct {
	key   *dpopKey
	token string
	nonce atomic.Value // string
	sent  atomic.Int64
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	send := func() (*http.Response, error) {
		u := *r.URL
		u.RawQuery, u.Fragment = "", ""
		cl := d.key.claims(r.Method, u.String(), d.token)
		if n, _ := d.nonce.Load().(string); n != "" {
			cl["nonce"] = n
		}
		req := r.Clone(r.Context())
		if r.GetBody != nil {
			req.Body, _ = r.GetBody()
		}
		req.Header.Set("Authorization", "DPoP "+d.token)
		req.Header.Set("DPoP", d.key.sign(cl, nil, nil))
		d.sent.Add(1)
		return http.DefaultTransport.RoundTrip(req)
	}
	resp, err := send()
	if err != nil {
		return nil, err
	}
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		d.nonce.Store(n)
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return send()
		}
	}
	return resp, nil
}

// dpopTokenRequest posts form to /token with the given DPoP header values.
func dpopTokenRequest(t *testing.T, issuer string, form url.Values, proofs ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// dpopLogin runs the authorization code flow for alice and exchanges the
// code with a proof of key (none when key is nil); nonce, when not empty,
// goes into the proof.
func dpopLogin(t *testing.T, issuer, clientID, redirect string, key *dpopKey, scopes ...string) map[string]any {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token"},
		RedirectURL: strings.Replace(redirect, "127.0.0.1", "127.0.0.1:49152", 1),
		Scopes:      scopes,
	}
	verifier := oauth2.GenerateVerifier()
	loc := newBrowser(t).authorize(cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "alice", "alice-pw", "allow", nil, false)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {cfg.RedirectURL}, "client_id": {clientID}, "code_verifier": {verifier}}
	var proofs []string
	if key != nil {
		proofs = append(proofs, key.proof(http.MethodPost, issuer+"/token", ""))
	}
	st, out, h := dpopTokenRequest(t, issuer, form, proofs...)
	if st == http.StatusBadRequest && out["error"] == "use_dpop_nonce" && key != nil {
		cl := key.claims(http.MethodPost, issuer+"/token", "")
		cl["nonce"] = h.Get("DPoP-Nonce")
		st, out, _ = dpopTokenRequest(t, issuer, form, key.sign(cl, nil, nil))
	}
	if st != http.StatusOK {
		t.Fatalf("code exchange: %d %v", st, out)
	}
	return out
}

// mcpCall posts an initialize request to /mcp with the given
// Authorization and DPoP header values and returns the status and the
// WWW-Authenticate challenges.
func mcpCall(t *testing.T, issuer, authorization string, proofs ...string) (int, []string) {
	t.Helper()
	resp := postMCP(t, issuer, initializeBody, http.Header{"Authorization": {authorization}, "Dpop": proofs})
	return resp.StatusCode, resp.Header.Values("WWW-Authenticate")
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDPoPEndToEnd(t *testing.T) {
	data := t.TempDir()
	listen := freeAddr(t) // the issuer must survive the restart below
	ts := startServer(t, "--data", data, "--listen", listen)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", data)
	clientID, redirect := publicClient(t, ts.URL, "DPoP Client")
	key := newDPoPKey(t)
	tok := dpopLogin(t, ts.URL, clientID, redirect, key, "notes:read")
	at := tok["access_token"].(string)
	mcpURL := ts.URL + "/mcp"

	t.Run("a default server advertises DPoP in both metadata documents", func(t *testing.T) {
		as := getJSON(t, ts.URL+"/.well-known/oauth-authorization-server")
		prm := getJSON(t, ts.URL+"/.well-known/oauth-protected-resource/mcp")
		for name, md := range map[string]map[string]any{"AS": as, "PRM": prm} {
			algs, _ := md["dpop_signing_alg_values_supported"].([]any)
			if len(algs) == 0 || algs[0] != "ES256" {
				t.Errorf("%s dpop_signing_alg_values_supported = %v; want ES256 first", name, md["dpop_signing_alg_values_supported"])
			}
			for _, a := range algs {
				if a == "none" || strings.HasPrefix(a.(string), "HS") {
					t.Errorf("%s advertises %v", name, a)
				}
			}
		}
		if v, ok := prm["dpop_bound_access_tokens_required"]; ok && v != false {
			t.Errorf("PRM dpop_bound_access_tokens_required = %v; want false (absent)", v)
		}
	})
	t.Run("a proof at /token yields token_type DPoP", func(t *testing.T) {
		if tok["token_type"] != "DPoP" {
			t.Fatalf("token_type = %v; want DPoP", tok["token_type"])
		}
	})
	t.Run("a DPoP session calls tools and round-trips a note", func(t *testing.T) {
		// The token has notes:read only; a second one may write.
		wtok := dpopLogin(t, ts.URL, clientID, redirect, key, "notes:read", "notes:write")
		tr := &dpopTransport{key: key, token: wtok["access_token"].(string)}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "dpop-test", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: &http.Client{Transport: tr}}, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		if got := whoami(t, cs); got["user"] != "alice" || got["client_id"] != clientID {
			t.Fatalf("whoami = %v", got)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "bound", "body": "by a key"}})
		if err != nil || res.IsError {
			t.Fatalf("note_save: %v %+v", err, res)
		}
		id := res.StructuredContent.(map[string]any)["id"]
		res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_get", Arguments: map[string]any{"id": id}})
		if err != nil || res.IsError || res.StructuredContent.(map[string]any)["body"] != "by a key" {
			t.Fatalf("note_get: %v %+v", err, res)
		}
	})

	refused := []struct {
		name      string
		auth      string
		proofs    func() []string
		wantError string
	}{
		{"proof missing", "DPoP " + at, func() []string { return nil }, "invalid_dpop_proof"},
		{"two proofs", "DPoP " + at, func() []string { return []string{key.proof("POST", mcpURL, at), key.proof("POST", mcpURL, at)} }, "invalid_dpop_proof"},
		{"wrong htm", "DPoP " + at, func() []string { return []string{key.proof("GET", mcpURL, at)} }, "invalid_dpop_proof"},
		{"wrong htu: another endpoint", "DPoP " + at, func() []string { return []string{key.proof("POST", ts.URL+"/token", at)} }, "invalid_dpop_proof"},
		{"wrong htu: the path only in the query", "DPoP " + at, func() []string { return []string{key.proof("POST", ts.URL+"/?/mcp", at)} }, "invalid_dpop_proof"},
		{"wrong htu: the path only in the fragment", "DPoP " + at, func() []string { return []string{key.proof("POST", ts.URL+"/#/mcp", at)} }, "invalid_dpop_proof"},
		{"stale iat", "DPoP " + at, func() []string {
			cl := key.claims("POST", mcpURL, at)
			cl["iat"] = time.Now().Add(-5 * time.Minute).Unix()
			return []string{key.sign(cl, nil, nil)}
		}, "invalid_dpop_proof"},
		{"future iat", "DPoP " + at, func() []string {
			cl := key.claims("POST", mcpURL, at)
			cl["iat"] = time.Now().Add(5 * time.Minute).Unix()
			return []string{key.sign(cl, nil, nil)}
		}, "invalid_dpop_proof"},
		{"alg none", "DPoP " + at, func() []string {
			hdr, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.PublicJWK()})
			p, _ := json.Marshal(key.claims("POST", mcpURL, at))
			return []string{base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(p) + "."}
		}, "invalid_dpop_proof"},
		{"HS256", "DPoP " + at, func() []string {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("s", 32))},
				(&jose.SignerOptions{}).WithType(dpop.ProofType).WithHeader("jwk", key.PublicJWK()))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := json.Marshal(key.claims("POST", mcpURL, at))
			jws, _ := s.Sign(p)
			out, _ := jws.CompactSerialize()
			return []string{out}
		}, "invalid_dpop_proof"},
		{"jwk with a private part", "DPoP " + at, func() []string {
			return []string{key.sign(key.claims("POST", mcpURL, at), map[jose.HeaderKey]any{"jwk": privateJWK{key.Signer}}, nil)}
		}, "invalid_dpop_proof"},
		{"signature by another key than the jwk's", "DPoP " + at, func() []string {
			return []string{key.sign(key.claims("POST", mcpURL, at), nil, newDPoPKey(t))}
		}, "invalid_dpop_proof"},
		{"ath of another token", "DPoP " + at, func() []string { return []string{key.proof("POST", mcpURL, "ory_at_another.token")} }, "invalid_dpop_proof"},
		{"a valid proof of another key than the token's", "DPoP " + at, func() []string {
			other := newDPoPKey(t)
			return []string{other.proof("POST", mcpURL, at)}
		}, "invalid_token"},
		{"a DPoP-bound token sent as Bearer", "Bearer " + at, func() []string { return nil }, "invalid_token"},
		{"a DPoP-bound token sent as Bearer with a proof", "Bearer " + at, func() []string { return []string{key.proof("POST", mcpURL, at)} }, "invalid_token"},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			st, challenges := mcpCall(t, ts.URL, tc.auth, tc.proofs()...)
			if st != http.StatusUnauthorized {
				t.Fatalf("status %d; want 401", st)
			}
			scheme := strings.Fields(tc.auth)[0]
			if len(challenges) == 0 || !strings.HasPrefix(challenges[0], scheme+" ") || !strings.Contains(challenges[0], `error="`+tc.wantError+`"`) {
				t.Fatalf("challenges %q; want the first in scheme %s with error=%q", challenges, scheme, tc.wantError)
			}
			if !strings.Contains(strings.Join(challenges, "\n"), `resource_metadata="`+ts.URL+`/.well-known/oauth-protected-resource/mcp"`) {
				t.Errorf("challenges %q lack resource_metadata", challenges)
			}
			var dpopChallenge string
			for _, c := range challenges {
				if strings.HasPrefix(c, "DPoP ") {
					dpopChallenge = c
				}
			}
			if !strings.Contains(dpopChallenge, `algs="ES256 `) {
				t.Errorf("challenges %q: no DPoP challenge with algs", challenges)
			}
		})
	}
	t.Run("refused: a bearer-only token sent as DPoP", func(t *testing.T) {
		bearer := dpopLogin(t, ts.URL, clientID, redirect, nil, "notes:read")
		if !strings.EqualFold(bearer["token_type"].(string), "bearer") {
			t.Fatalf("token_type %v; want bearer", bearer["token_type"])
		}
		bt := bearer["access_token"].(string)
		st, challenges := mcpCall(t, ts.URL, "DPoP "+bt, key.proof("POST", mcpURL, bt))
		if st != http.StatusUnauthorized || !strings.HasPrefix(challenges[0], `DPoP error="invalid_token"`) {
			t.Fatalf("%d %q; want 401 DPoP invalid_token", st, challenges)
		}
		if st, _ := mcpCall(t, ts.URL, "Bearer "+bt); st != http.StatusOK {
			t.Fatalf("the same token as Bearer: %d; want 200", st)
		}
	})
	t.Run("accepted: htu with a query, upper-case host and default-less form", func(t *testing.T) {
		u := strings.Replace(mcpURL, "http://", "HTTP://", 1) + "?x=1#frag"
		if st, ch := mcpCall(t, ts.URL, "DPoP "+at, key.proof("POST", u, at)); st != http.StatusOK {
			t.Fatalf("%d %q; want 200", st, ch)
		}
	})
	t.Run("htu may name the endpoint by another loopback name on its port, never a loopback service on another port", func(t *testing.T) {
		port := ts.URL[strings.LastIndex(ts.URL, ":")+1:]
		for _, tc := range []struct {
			host string
			want int
		}{
			{"localhost:" + port, http.StatusOK},
			{"localhost:1", http.StatusUnauthorized}, // a proof made for another local server, replayed here
			{"127.0.0.2:" + port, http.StatusOK},     // another loopback address, same port
			{"127.0.0.1:65535", http.StatusUnauthorized},
		} {
			htu := "http://" + tc.host + "/mcp"
			resp := postMCP(t, ts.URL, initializeBody, http.Header{"Host": {tc.host}, "Authorization": {"DPoP " + at}, "Dpop": {key.proof("POST", htu, at)}})
			if resp.StatusCode != tc.want {
				t.Errorf("Host %s with htu %s: %d %q; want %d", tc.host, htu, resp.StatusCode, resp.Header.Values("WWW-Authenticate"), tc.want)
			}
		}
	})
	t.Run("a DPoP token lacking a scope gets a DPoP insufficient_scope challenge", func(t *testing.T) {
		resp := postMCP(t, ts.URL, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"x","body":"y"}}}`,
			http.Header{"Authorization": {"DPoP " + at}, "Dpop": {key.proof("POST", mcpURL, at)}})
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(ch, `DPoP error="insufficient_scope", scope="notes:write notes:read"`) || !strings.Contains(ch, "resource_metadata=") {
			t.Fatalf("%d %q; want 403 with a DPoP insufficient_scope challenge", resp.StatusCode, ch)
		}
	})
	t.Run("refused: refresh of the public client's token with another key", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}
		st, out, _ := dpopTokenRequest(t, ts.URL, form, newDPoPKey(t).proof("POST", ts.URL+"/token", ""))
		if st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
			t.Fatalf("%d %v; want 400 invalid_dpop_proof", st, out)
		}
		st, out, _ = dpopTokenRequest(t, ts.URL, form, key.proof("POST", ts.URL+"/token", ""))
		if st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("refresh with the bound key: %d %v; want 200 DPoP", st, out)
		}
		at = out["access_token"].(string)
	})
	t.Run("refused: a replayed proof, also after a restart", func(t *testing.T) {
		p := key.proof("POST", mcpURL, at)
		if st, ch := mcpCall(t, ts.URL, "DPoP "+at, p); st != http.StatusOK {
			t.Fatalf("first use: %d %q", st, ch)
		}
		if st, ch := mcpCall(t, ts.URL, "DPoP "+at, p); st != http.StatusUnauthorized || !strings.Contains(ch[0], "invalid_dpop_proof") {
			t.Fatalf("second use: %d %q; want 401 invalid_dpop_proof", st, ch)
		}
		ts.Stop(t)
		ts2 := startServer(t, "--data", data, "--listen", listen)
		if st, ch := mcpCall(t, ts2.URL, "DPoP "+at, p); st != http.StatusUnauthorized || !strings.Contains(ch[0], "invalid_dpop_proof") {
			t.Fatalf("after restart: %d %q; want 401 invalid_dpop_proof", st, ch)
		}
		if st, ch := mcpCall(t, ts2.URL, "DPoP "+at, key.proof("POST", mcpURL, at)); st != http.StatusOK {
			t.Fatalf("a fresh proof after restart: %d %q; want 200", st, ch)
		}
	})
}

// privateJWK marshals an EC private key as a JWK, d included.
type privateJWK struct{ k crypto.Signer }

func (p privateJWK) MarshalJSON() ([]byte, error) {
	return json.Marshal(jose.JSONWebKey{Key: p.k})
}

func TestDPoPRequiredAndNonces(t *testing.T) {
	t.Run("--require-dpop: no token without a proof, no bearer at /mcp, PRM says so", func(t *testing.T) {
		ts := startServer(t, "--require-dpop")
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
		clientID, redirect := publicClient(t, ts.URL, "Client")
		prm := getJSON(t, ts.URL+"/.well-known/oauth-protected-resource/mcp")
		if prm["dpop_bound_access_tokens_required"] != true {
			t.Errorf("PRM dpop_bound_access_tokens_required = %v; want true", prm["dpop_bound_access_tokens_required"])
		}
		cfg := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}, RedirectURL: strings.Replace(redirect, "127.0.0.1", "127.0.0.1:49152", 1)}
		v := oauth2.GenerateVerifier()
		loc := newBrowser(t).authorize(cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(v)), "alice", "alice-pw", "allow", nil, false)
		if _, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v)); err == nil || !strings.Contains(err.Error(), "invalid_dpop_proof") {
			t.Fatalf("exchange without a proof: %v; want invalid_dpop_proof", err)
		}
		st, challenges := mcpCall(t, ts.URL, "Bearer whatever")
		if st != http.StatusUnauthorized || len(challenges) != 1 || !strings.HasPrefix(challenges[0], "DPoP ") {
			t.Fatalf("%d %q; want 401 with only a DPoP challenge", st, challenges)
		}
		key := newDPoPKey(t)
		tok := dpopLogin(t, ts.URL, clientID, redirect, key, "notes:read")
		tr := &dpopTransport{key: key, token: tok["access_token"].(string)}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "dpop-test", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", HTTPClient: &http.Client{Transport: tr}}, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		if got := whoami(t, cs); got["user"] != "alice" {
			t.Fatalf("whoami = %v", got)
		}
	})
	t.Run("--dpop-nonce: use_dpop_nonce at /token and /mcp, and a client that retries gets through", func(t *testing.T) {
		ts := startServer(t, "--dpop-nonce")
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
		clientID, redirect := publicClient(t, ts.URL, "Client")
		key := newDPoPKey(t)
		tok := dpopLogin(t, ts.URL, clientID, redirect, key, "notes:read") // retries on use_dpop_nonce
		at := tok["access_token"].(string)
		st, challenges := mcpCall(t, ts.URL, "DPoP "+at, key.proof("POST", ts.URL+"/mcp", at))
		if st != http.StatusUnauthorized || !strings.HasPrefix(challenges[0], `DPoP error="use_dpop_nonce"`) {
			t.Fatalf("%d %q; want 401 DPoP use_dpop_nonce", st, challenges)
		}
		tr := &dpopTransport{key: key, token: at}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "dpop-test", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", HTTPClient: &http.Client{Transport: tr}}, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		if got := whoami(t, cs); got["user"] != "alice" {
			t.Fatalf("whoami = %v", got)
		}
	})
}

// dpopCodeForm authorizes alice with dpop_jkt (when not empty) and returns
// the form that exchanges the code.
func dpopCodeForm(t *testing.T, issuer, clientID, redirect, jkt string) url.Values {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token"},
		RedirectURL: strings.Replace(redirect, "127.0.0.1", "127.0.0.1:49152", 1),
		Scopes:      []string{"notes:read"},
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if jkt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("dpop_jkt", jkt))
	}
	loc := newBrowser(t).authorize(cfg.AuthCodeURL("state-0123456789", opts...), "alice", "alice-pw", "allow", nil, false)
	return url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {cfg.RedirectURL}, "client_id": {clientID}, "code_verifier": {verifier}}
}

// TestDPoPReuseWithoutTheKey: with the real store, a used code bound by
// dpop_jkt and a rotated DPoP-bound refresh token of a public client are
// worth nothing without the key, not even to revoke the grant, which
// reuse of either by the key's holder does. (Whatever the store keeps of
// a used code or a rotated token must keep its binding.)
func TestDPoPReuseWithoutTheKey(t *testing.T) {
	ts := startServer(t, "--refresh-grace", "0s")
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "DPoP Client")
	key, thief := newDPoPKey(t), newDPoPKey(t)
	tokenURL := ts.URL + "/token"
	alive := func(t *testing.T, at string) bool {
		t.Helper()
		st, _ := mcpCall(t, ts.URL, "DPoP "+at, key.proof("POST", ts.URL+"/mcp", at))
		return st == http.StatusOK
	}

	t.Run("a used code bound by dpop_jkt", func(t *testing.T) {
		form := dpopCodeForm(t, ts.URL, clientID, redirect, key.jkt())
		st, out, _ := dpopTokenRequest(t, ts.URL, form, key.proof("POST", tokenURL, ""))
		if st != http.StatusOK {
			t.Fatalf("exchange: %d %v", st, out)
		}
		at := out["access_token"].(string)
		for name, proofs := range map[string][]string{"another key": {thief.proof("POST", tokenURL, "")}, "no proof": nil} {
			if st, out, _ := dpopTokenRequest(t, ts.URL, form, proofs...); st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
				t.Errorf("replay with %s: %d %v; want 400 invalid_dpop_proof", name, st, out)
			}
		}
		if !alive(t, at) {
			t.Fatal("the tokens died after replays of the code without the key")
		}
		if st, out, _ := dpopTokenRequest(t, ts.URL, form, key.proof("POST", tokenURL, "")); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse by the key's holder: %d %v; want 400 invalid_grant", st, out)
		}
		if alive(t, at) {
			t.Fatal("the tokens survived the reuse of their code by the key's holder")
		}
	})
	t.Run("a rotated DPoP-bound refresh token of a public client", func(t *testing.T) {
		st, tok, _ := dpopTokenRequest(t, ts.URL, dpopCodeForm(t, ts.URL, clientID, redirect, ""), key.proof("POST", tokenURL, ""))
		if st != http.StatusOK {
			t.Fatalf("exchange: %d %v", st, tok)
		}
		old := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}
		st, next, _ := dpopTokenRequest(t, ts.URL, old, key.proof("POST", tokenURL, ""))
		if st != http.StatusOK {
			t.Fatalf("rotation: %d %v", st, next)
		}
		for name, proofs := range map[string][]string{"another key": {thief.proof("POST", tokenURL, "")}, "no proof": nil} {
			if st, out, _ := dpopTokenRequest(t, ts.URL, old, proofs...); st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
				t.Errorf("reuse with %s: %d %v; want 400 invalid_dpop_proof", name, st, out)
			}
		}
		if !alive(t, next["access_token"].(string)) {
			t.Fatal("the grant died after reuse of a rotated token without the key")
		}
		if st, out, _ := dpopTokenRequest(t, ts.URL, old, key.proof("POST", tokenURL, "")); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse by the key's holder: %d %v; want 400 invalid_grant", st, out)
		}
		if alive(t, next["access_token"].(string)) {
			t.Fatal("the grant survived reuse of a rotated token by the key's holder")
		}
	})
}

// TestDPoPTokenProofSurvivesCrash: proofs that got tokens at /token are
// refused after the server is killed (SIGKILL, no shutdown) right after
// the last answer and started again: each jti record committed with its
// tokens. (Records written behind the answers, at most one flush per
// 20 ms, lost the last of a quick series.)
func TestDPoPTokenProofSurvivesCrash(t *testing.T) {
	bin := mcpdBinary(t)
	data := t.TempDir()
	listen := freeAddr(t)
	issuer := "http://" + listen
	start := func() *exec.Cmd {
		var stderr syncBuffer
		cmd := exec.Command(bin, "serve", "--listen", listen, "--data", data, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=admin-pw")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitFor(t, func() bool { return strings.Contains(stderr.String(), "is listening on") })
		return cmd
	}
	cmd := start()
	reg := registerClient(t, issuer, map[string]any{
		"client_name": "Backend", "token_endpoint_auth_method": "client_secret_post",
		"grant_types": []string{"client_credentials"}, "scope": "notes:read",
	})
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {reg["client_id"].(string)}, "client_secret": {reg["client_secret"].(string)}}
	key := newDPoPKey(t)
	var proofs []string
	for range 20 {
		proof := key.proof("POST", issuer+"/token", "")
		if st, out, _ := dpopTokenRequest(t, issuer, form, proof); st != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("token: %d %v", st, out)
		}
		proofs = append(proofs, proof)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	start()
	for i, proof := range proofs {
		if st, out, _ := dpopTokenRequest(t, issuer, form, proof); st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
			t.Errorf("proof %d of %d replayed after a crash: %d %v; want 400 invalid_dpop_proof", i+1, len(proofs), st, out["error"])
		}
	}
	if st, out, _ := dpopTokenRequest(t, issuer, form, key.proof("POST", issuer+"/token", "")); st != http.StatusOK {
		t.Fatalf("a fresh proof after the crash: %d %v; want 200", st, out)
	}
}
