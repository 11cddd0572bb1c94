package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeProofs is a ProofChecker whose proofs are plain strings: "key:K" is a
// good proof of the key with thumbprint K, "bad" an invalid one and
// "stale-nonce" one without the current nonce.
type fakeProofs struct {
	nonce string

	mu    sync.Mutex
	calls []proofCall
}

type proofCall struct {
	Proofs []string
	Method string
	URLs   []string
	Token  string
}

func (f *fakeProofs) CheckProof(_ context.Context, proofs []string, method string, urls []string, token string) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, proofCall{proofs, method, urls, token})
	f.mu.Unlock()
	if len(proofs) != 1 {
		return "", fmt.Errorf("%w: a DPoP proof is required", ErrInvalidDPoPProof)
	}
	switch p := proofs[0]; {
	case strings.HasPrefix(p, "key:"):
		return strings.TrimPrefix(p, "key:"), nil
	case p == "stale-nonce":
		return "", fmt.Errorf("%w: the DPoP nonce is not current", ErrUseDPoPNonce)
	case p == "broken-store":
		return "", fmt.Errorf("disk on fire")
	}
	return "", fmt.Errorf("%w: the DPoP proof's htm is not the method of this request", ErrInvalidDPoPProof)
}

func (f *fakeProofs) Algorithms() []string { return []string{"ES256", "EdDSA"} }
func (f *fakeProofs) Nonce() string        { return f.nonce }

func withProofs(p *fakeProofs, require bool) func(*Config) {
	return func(c *Config) {
		c.DPoP = p
		c.RequireDPoP = require
	}
}

func TestDPoPChallenges(t *testing.T) {
	proofs := &fakeProofs{}
	env := newTestEnv(t, withProofs(proofs, false))
	prm := env.ts.URL + "/.well-known/oauth-protected-resource/mcp"
	tail := `resource_metadata="` + prm + `", scope="notes:read notes:write api:call"`
	dpopTail := tail + `, algs="ES256 EdDSA"`
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		want       []string
	}{
		{"no token: a Bearer and a DPoP challenge", nil, 401, []string{"Bearer " + tail, "DPoP " + dpopTail}},
		{"a DPoP-bound token sent as Bearer is invalid_token", map[string]string{"Authorization": "Bearer alice-bound"}, 401,
			[]string{`Bearer error="invalid_token", error_description="the access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof", ` + tail, "DPoP " + dpopTail}},
		{"a bearer-only token sent as DPoP is invalid_token", map[string]string{"Authorization": "DPoP alice-all", "DPoP": "key:jkt-1"}, 401,
			[]string{`DPoP error="invalid_token", error_description="the access token is not DPoP-bound: present it as a Bearer token", ` + dpopTail, "Bearer " + tail}},
		{"a DPoP token without a proof is invalid_dpop_proof", map[string]string{"Authorization": "DPoP alice-bound"}, 401,
			[]string{`DPoP error="invalid_dpop_proof", error_description="a DPoP proof is required", ` + dpopTail, "Bearer " + tail}},
		{"an invalid proof is invalid_dpop_proof with the checker's words", map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "bad"}, 401,
			[]string{`DPoP error="invalid_dpop_proof", error_description="the DPoP proof's htm is not the method of this request", ` + dpopTail, "Bearer " + tail}},
		{"a proof of another key is invalid_token", map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-2"}, 401,
			[]string{`DPoP error="invalid_token", error_description="the DPoP proof is signed by another key than the access token is bound to", ` + dpopTail, "Bearer " + tail}},
		{"an unknown token as DPoP is invalid_token in the DPoP challenge", map[string]string{"Authorization": "DPoP nope", "DPoP": "key:jkt-1"}, 401,
			[]string{`DPoP error="invalid_token", error_description="the access token is invalid, expired, revoked or not meant for this resource", ` + dpopTail, "Bearer " + tail}},
		{"the DPoP scheme matches case-insensitively", map[string]string{"Authorization": "dpop alice-bound", "DPoP": "key:jkt-1"}, 200, nil},
		{"a DPoP token with a proof of its key is accepted", map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1"}, 200, nil},
		{"a bearer token as Bearer is still accepted", map[string]string{"Authorization": "Bearer alice-all"}, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.post(t, initializeBody, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d; want %d (%q)", resp.StatusCode, tt.wantStatus, resp.Header.Values("WWW-Authenticate"))
			}
			if d := cmp.Diff(tt.want, resp.Header.Values("WWW-Authenticate")); d != "" {
				t.Errorf("WWW-Authenticate (-want +got):\n%s", d)
			}
		})
	}
	t.Run("the proof is checked for this request: method, the endpoint's URL, the token", func(t *testing.T) {
		proofs.mu.Lock()
		proofs.calls = nil
		proofs.mu.Unlock()
		env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1"})
		want := []proofCall{{Proofs: []string{"key:jkt-1"}, Method: "POST", URLs: []string{env.ts.URL + "/mcp"}, Token: "alice-bound"}}
		if d := cmp.Diff(want, proofs.calls); d != "" {
			t.Errorf("CheckProof calls (-want +got):\n%s", d)
		}
	})
	t.Run("a checker failure is a server error, not a challenge", func(t *testing.T) {
		resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "broken-store"})
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status = %d; want 500", resp.StatusCode)
		}
	})
	t.Run("a DPoP token lacking a scope gets insufficient_scope in a DPoP challenge", func(t *testing.T) {
		resp := env.post(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`,
			map[string]string{"Authorization": "DPoP alice-bound-read", "DPoP": "key:jkt-1"})
		want := []string{`DPoP error="insufficient_scope", scope="notes:write notes:read", resource_metadata="` + prm + `", error_description="the access token lacks a scope this request needs", algs="ES256 EdDSA"`}
		if resp.StatusCode != http.StatusForbidden || cmp.Diff(want, resp.Header.Values("WWW-Authenticate")) != "" {
			t.Fatalf("%d %q; want 403 %q", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), want)
		}
	})
}

// TestDPoPProofURLs: a proof's htu may name the endpoint by the Host the
// request came with only when that Host is another name of this endpoint.
// Any loopback Host passes the Host check, but a proof made for a loopback
// service on another port was made for another server.
func TestDPoPProofURLs(t *testing.T) {
	proofs := &fakeProofs{}
	env := newTestEnv(t, func(c *Config) {
		withProofs(proofs, false)(c)
		c.AllowedHosts = []string{"mcp.internal:8443"}
	})
	resource := env.ts.URL + "/mcp"
	port := env.ts.URL[strings.LastIndex(env.ts.URL, ":")+1:]
	tests := []struct {
		name string
		host string
		want []string
	}{
		{"the issuer's host", strings.TrimPrefix(env.ts.URL, "http://"), []string{resource}},
		{"localhost on the issuer's port names the issuer's endpoint", "localhost:" + port, []string{resource, "http://localhost:" + port + "/mcp"}},
		{"IPv6 loopback on the issuer's port names the issuer's endpoint", "[::1]:" + port, []string{resource, "http://[::1]:" + port + "/mcp"}},
		{"a configured host names the issuer's endpoint", "mcp.internal:8443", []string{resource, "http://mcp.internal:8443/mcp"}},
		{"localhost on another port is another server: only the resource", "localhost:1234", []string{resource}},
		{"loopback without a port is another server: only the resource", "127.0.0.1", []string{resource}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proofs.mu.Lock()
			proofs.calls = nil
			proofs.mu.Unlock()
			resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1", "Host": tt.host})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			proofs.mu.Lock()
			defer proofs.mu.Unlock()
			if len(proofs.calls) != 1 {
				t.Fatalf("%d CheckProof calls; want 1", len(proofs.calls))
			}
			if d := cmp.Diff(tt.want, proofs.calls[0].URLs); d != "" {
				t.Errorf("URLs the htu may name (-want +got):\n%s", d)
			}
		})
	}
}

// TestDPoPProofURLsPathIssuer: behind a proxy the issuer may have a path
// (https://example.com/prefix); another name of the endpoint keeps it, so
// a proof for https://example.com/mcp, another application on the same
// host, is never taken for one of this endpoint.
func TestDPoPProofURLsPathIssuer(t *testing.T) {
	proofs := &fakeProofs{}
	var issuer string
	env := newTestEnv(t, func(c *Config) {
		withProofs(proofs, false)(c)
		issuer = c.Issuer + "/prefix"
		c.Issuer = issuer
	})
	port := env.ts.URL[strings.LastIndex(env.ts.URL, ":")+1:]
	resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1", "Host": "localhost:" + port})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
	proofs.mu.Lock()
	defer proofs.mu.Unlock()
	want := []string{issuer + "/mcp", "http://localhost:" + port + "/prefix/mcp"}
	if len(proofs.calls) != 1 || cmp.Diff(want, proofs.calls[0].URLs) != "" {
		t.Fatalf("CheckProof calls %+v; want one with URLs %q", proofs.calls, want)
	}
}

func TestDPoPRequiredAndNonce(t *testing.T) {
	proofs := &fakeProofs{nonce: "nonce-1"}
	env := newTestEnv(t, withProofs(proofs, true))
	prm := env.ts.URL + "/.well-known/oauth-protected-resource/mcp"
	dpopTail := `resource_metadata="` + prm + `", scope="notes:read notes:write api:call", algs="ES256 EdDSA"`
	t.Run("with DPoP required there is only a DPoP challenge, with the nonce", func(t *testing.T) {
		resp := env.post(t, initializeBody, nil)
		if d := cmp.Diff([]string{"DPoP " + dpopTail}, resp.Header.Values("WWW-Authenticate")); d != "" {
			t.Errorf("WWW-Authenticate (-want +got):\n%s", d)
		}
		if got := resp.Header.Get("DPoP-Nonce"); got != "nonce-1" {
			t.Errorf("DPoP-Nonce = %q; want nonce-1", got)
		}
	})
	t.Run("with DPoP required a valid bearer token is refused", func(t *testing.T) {
		resp := env.post(t, initializeBody, map[string]string{"Authorization": "Bearer alice-all"})
		want := []string{`DPoP error="invalid_token", error_description="this resource accepts DPoP-bound tokens only", ` + dpopTail}
		if resp.StatusCode != 401 || cmp.Diff(want, resp.Header.Values("WWW-Authenticate")) != "" {
			t.Fatalf("%d %q; want 401 %q", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), want)
		}
	})
	t.Run("a proof without the current nonce gets use_dpop_nonce and the nonce", func(t *testing.T) {
		resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "stale-nonce"})
		want := []string{`DPoP error="use_dpop_nonce", error_description="the DPoP nonce is not current", ` + dpopTail}
		if resp.StatusCode != 401 || cmp.Diff(want, resp.Header.Values("WWW-Authenticate")) != "" || resp.Header.Get("DPoP-Nonce") != "nonce-1" {
			t.Fatalf("%d %q DPoP-Nonce %q; want 401 %q with nonce-1", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce"), want)
		}
	})
	t.Run("an accepted request carries the current nonce", func(t *testing.T) {
		resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1"})
		if resp.StatusCode != 200 || resp.Header.Get("DPoP-Nonce") != "nonce-1" {
			t.Fatalf("%d DPoP-Nonce %q; want 200 with nonce-1", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
		}
	})
	t.Run("a whole session runs over DPoP", func(t *testing.T) {
		client := sdk.NewClient(&sdk.Implementation{Name: "dpop", Version: "1"}, nil)
		cs, err := client.Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: env.ts.URL + Path, HTTPClient: &http.Client{Transport: dpopFakeTransport{}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		var who map[string]any
		if msg := callTool(t, cs, "whoami", map[string]any{}, &who); msg != "" || who["user"] != "alice" || who["client_id"] != "ts2" {
			t.Fatalf("whoami = %v %q", who, msg)
		}
	})
}

// dpopFakeTransport presents alice-bound with a fake proof of its key.
type dpopFakeTransport struct{}

func (dpopFakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP alice-bound")
	r.Header.Set("DPoP", "key:jkt-1")
	return http.DefaultTransport.RoundTrip(r)
}

func TestDPoPOff(t *testing.T) {
	env := newTestEnv(t, nil)
	t.Run("without a checker the DPoP scheme counts as no token", func(t *testing.T) {
		resp := env.post(t, initializeBody, map[string]string{"Authorization": "DPoP alice-bound", "DPoP": "key:jkt-1"})
		got := resp.Header.Values("WWW-Authenticate")
		if resp.StatusCode != 401 || len(got) != 1 || !strings.HasPrefix(got[0], "Bearer resource_metadata=") {
			t.Fatalf("%d %q; want 401 with one Bearer challenge", resp.StatusCode, got)
		}
	})
	t.Run("RequireDPoP needs a checker", func(t *testing.T) {
		if _, err := New(Config{Issuer: "http://127.0.0.1:1", Verifier: fakeVerifier, Notes: newMemNotes(), RequireDPoP: true}); err == nil {
			t.Fatal("New: nil error")
		}
	})
}

func TestPRMDPoP(t *testing.T) {
	for _, tt := range []struct {
		name     string
		edit     func(*Config)
		wantAlgs []any
		wantReq  any
	}{
		{"without DPoP nothing is listed", nil, nil, nil},
		{"with DPoP the algorithms, required absent (false)", withProofs(&fakeProofs{}, false), []any{"ES256", "EdDSA"}, nil},
		{"with DPoP required, true", withProofs(&fakeProofs{}, true), []any{"ES256", "EdDSA"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, tt.edit)
			resp, err := http.Get(env.ts.URL + prmPath + Path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var md map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
				t.Fatal(err)
			}
			algs, _ := md["dpop_signing_alg_values_supported"].([]any)
			if !slices.Equal(algs, tt.wantAlgs) || md["dpop_bound_access_tokens_required"] != tt.wantReq {
				t.Errorf("dpop_signing_alg_values_supported %v, dpop_bound_access_tokens_required %v; want %v, %v", algs, md["dpop_bound_access_tokens_required"], tt.wantAlgs, tt.wantReq)
			}
		})
	}
}

// TestTwoAuthorizationHeaders: a request with two Authorization headers
// is refused whatever they hold, rather than one of them counting (RFC
// 6750 §3.1: invalid_request), so what the check read and what the SDK
// reads after it can never differ.
func TestTwoAuthorizationHeaders(t *testing.T) {
	env := newTestEnv(t, withProofs(&fakeProofs{}, false))
	for _, tc := range []struct {
		name  string
		auths []string
	}{
		{"a DPoP and a Bearer header", []string{"DPoP alice-bound", "Bearer alice-all"}},
		{"a Bearer and a DPoP header", []string{"Bearer alice-all", "DPoP alice-bound"}},
		{"the same bearer token twice", []string{"Bearer alice-all", "Bearer alice-all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, env.ts.URL+Path, strings.NewReader(initializeBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("DPoP", "key:jkt-1")
			for _, a := range tc.auths {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ch := resp.Header.Values("WWW-Authenticate")
			if resp.StatusCode != http.StatusBadRequest || len(ch) == 0 || !strings.Contains(ch[0], `error="invalid_request"`) {
				t.Fatalf("%d %q; want 400 with error=\"invalid_request\"", resp.StatusCode, ch)
			}
		})
	}
}
