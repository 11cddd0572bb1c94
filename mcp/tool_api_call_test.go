package mcp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// upstreamAS is a tiny OAuth token endpoint for the client-credentials
// grant: client "mcpd" with secret "s3cret".
type upstreamAS struct {
	mu        sync.Mutex
	issued    map[string]bool
	hits      int
	expiresIn int // seconds; 0 means an hour
}

func (a *upstreamAS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hits++
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if r.PostFormValue("grant_type") != "client_credentials" || id != "mcpd" || secret != "s3cret" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	tok := fmt.Sprintf("upstream-token-%d", a.hits)
	a.issued[tok] = true
	expiresIn := a.expiresIn
	if expiresIn == 0 {
		expiresIn = 3600
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": expiresIn, "scope": r.PostFormValue("scope")})
}

func (a *upstreamAS) valid(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issued[tok]
}

func (a *upstreamAS) tokenRequests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits
}

// upstreamAPI answers /v1/... when the bearer is accepted by ok, and
// records the Authorization headers it saw.
type upstreamAPI struct {
	mu   sync.Mutex
	ok   func(string) bool
	seen []string
}

func (u *upstreamAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	authz := r.Header.Get("Authorization")
	u.mu.Lock()
	u.seen = append(u.seen, authz)
	u.mu.Unlock()
	tok, _ := strings.CutPrefix(authz, "Bearer ")
	if !u.ok(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/v1/echo":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=upstream")
		json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(body), "type": r.Header.Get("Content-Type")})
	case "/v1/big":
		io.WriteString(w, strings.Repeat("x", 2048))
	case "/v1/slow":
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	case "/v1/redirect":
		http.Redirect(w, r, "http://evil.example/steal", http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

func (u *upstreamAPI) authorizations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func TestAPICall(t *testing.T) {
	as := &upstreamAS{issued: map[string]bool{}}
	asSrv := httptest.NewServer(as)
	t.Cleanup(asSrv.Close)
	api := &upstreamAPI{ok: as.valid}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	static := &upstreamAPI{ok: func(tok string) bool { return tok == "static-secret" }}
	staticSrv := httptest.NewServer(static)
	t.Cleanup(staticSrv.Close)

	t.Setenv("MCPD_TEST_UPSTREAM_SECRET", "s3cret")
	t.Setenv("MCPD_TEST_WRONG_SECRET", "wrong")
	t.Setenv("MCPD_TEST_STATIC_BEARER", "static-secret")
	env := newTestEnv(t, func(c *Config) {
		c.Upstreams = []Upstream{
			{
				Name: "api", BaseURL: apiSrv.URL, Methods: []string{"GET", "post"}, PathPrefixes: []string{"/v1"},
				Auth:    UpstreamAuth{Type: "client_credentials", TokenURL: asSrv.URL + "/token", ClientID: "mcpd", ClientSecretEnv: "MCPD_TEST_UPSTREAM_SECRET", Scopes: []string{"read"}},
				Timeout: 300 * time.Millisecond, MaxResponseBytes: 1024,
			},
			{
				Name: "misconfigured", BaseURL: apiSrv.URL, PathPrefixes: []string{"/v1"},
				Auth: UpstreamAuth{Type: "client_credentials", TokenURL: asSrv.URL + "/token", ClientID: "mcpd", ClientSecretEnv: "MCPD_TEST_WRONG_SECRET"},
			},
			{
				Name: "static", BaseURL: staticSrv.URL, PathPrefixes: []string{"/v1/"},
				Auth: UpstreamAuth{Type: "bearer", BearerEnv: "MCPD_TEST_STATIC_BEARER"},
			},
		}
	})
	cs := env.connect(t, "alice-all")

	t.Run("a GET reaches the upstream with a client-credentials token", func(t *testing.T) {
		var out apiCallOut
		if msg := callTool(t, cs, "api_call", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/echo?q=1"}, &out); msg != "" {
			t.Fatalf("api_call: %s", msg)
		}
		var echo map[string]string
		if err := json.Unmarshal([]byte(out.Body), &echo); err != nil {
			t.Fatalf("body %q: %v", out.Body, err)
		}
		want := map[string]string{"method": "GET", "path": "/v1/echo", "query": "q=1", "body": "", "type": ""}
		if diff := cmp.Diff(want, echo); diff != "" || out.Status != 200 {
			t.Errorf("status %d, echo (-want +got):\n%s", out.Status, diff)
		}
		if out.Headers["Content-Type"] != "application/json" {
			t.Errorf("headers = %v; want Content-Type application/json", out.Headers)
		}
		if _, ok := out.Headers["Set-Cookie"]; ok {
			t.Errorf("headers = %v; want Set-Cookie dropped", out.Headers)
		}
	})
	t.Run("a POST body is sent as JSON", func(t *testing.T) {
		var out apiCallOut
		if msg := callTool(t, cs, "api_call", map[string]any{"upstream": "api", "method": "post", "path": "/v1/echo", "body": `{"a":1}`}, &out); msg != "" {
			t.Fatalf("api_call: %s", msg)
		}
		var echo map[string]string
		json.Unmarshal([]byte(out.Body), &echo)
		if echo["method"] != "POST" || echo["body"] != `{"a":1}` || echo["type"] != "application/json" {
			t.Errorf("echo = %v", echo)
		}
	})
	t.Run("the upstream token is cached across calls", func(t *testing.T) {
		if n := as.tokenRequests(); n != 1 {
			t.Errorf("token requests = %d; want 1", n)
		}
	})
	t.Run("the caller's token never reaches the upstream", func(t *testing.T) {
		for _, a := range append(api.authorizations(), static.authorizations()...) {
			if strings.Contains(a, "alice-all") {
				t.Errorf("upstream saw Authorization %q", a)
			}
		}
	})
	t.Run("a static bearer upstream gets its token from the environment", func(t *testing.T) {
		var out apiCallOut
		if msg := callTool(t, cs, "api_call", map[string]any{"upstream": "static", "method": "GET", "path": "/v1/echo"}, &out); msg != "" || out.Status != 200 {
			t.Errorf("api_call: %q status %d", msg, out.Status)
		}
	})
	t.Run("a redirect is returned, not followed", func(t *testing.T) {
		var out apiCallOut
		if msg := callTool(t, cs, "api_call", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/redirect"}, &out); msg != "" || out.Status != http.StatusFound {
			t.Errorf("api_call: %q status %d; want 302", msg, out.Status)
		}
	})

	refusals := []struct {
		name    string
		args    map[string]any
		wantMsg string
	}{
		{"an unknown upstream is refused and the known ones named", map[string]any{"upstream": "nope", "method": "GET", "path": "/v1/echo"}, `no upstream named "nope". Upstreams: api`},
		{"a method the upstream does not allow is refused", map[string]any{"upstream": "api", "method": "DELETE", "path": "/v1/echo"}, `method "DELETE" is not allowed`},
		{"a path outside the prefixes is refused", map[string]any{"upstream": "api", "method": "GET", "path": "/admin"}, "not under an allowed prefix"},
		{"a prefix matches whole segments only", map[string]any{"upstream": "api", "method": "GET", "path": "/v10/echo"}, "not under an allowed prefix"},
		{"a dot-dot segment is refused", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/../admin"}, ". or .. segment"},
		{"an encoded dot-dot is refused", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/%2e%2e/admin"}, "encoded slash or dot"},
		{"a backslash is refused", map[string]any{"upstream": "api", "method": "GET", "path": `/v1\..\admin`}, "backslash"},
		{"an absolute URL is refused", map[string]any{"upstream": "api", "method": "GET", "path": "http://evil.example/v1/echo"}, "not a URL"},
		{"a scheme-relative URL to another host is refused", map[string]any{"upstream": "api", "method": "GET", "path": "//evil.example/v1/echo"}, "not a URL"},
		{"a response over the size cap is an error", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/big"}, "exceeds 1024 bytes"},
		{"a slow upstream times out", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/slow"}, "did not answer within 300ms"},
		{"a failed upstream token request is a clear error", map[string]any{"upstream": "misconfigured", "method": "GET", "path": "/v1/echo"}, `could not obtain a token for upstream "misconfigured"`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			msg := callTool(t, cs, "api_call", tt.args, nil)
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("tool error = %q; want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

func TestAPICallFetchesANewTokenWhenTheOldExpires(t *testing.T) {
	// Tokens that expire within oauth2's 10 s safety margin are stale at
	// once, so every call needs a fresh one.
	as := &upstreamAS{issued: map[string]bool{}, expiresIn: 5}
	asSrv := httptest.NewServer(as)
	t.Cleanup(asSrv.Close)
	api := &upstreamAPI{ok: as.valid}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	t.Setenv("MCPD_TEST_UPSTREAM_SECRET", "s3cret")
	env := newTestEnv(t, func(c *Config) {
		c.Upstreams = []Upstream{{
			Name: "api", BaseURL: apiSrv.URL, PathPrefixes: []string{"/v1"},
			Auth: UpstreamAuth{Type: "client_credentials", TokenURL: asSrv.URL, ClientID: "mcpd", ClientSecretEnv: "MCPD_TEST_UPSTREAM_SECRET"},
		}}
	})
	cs := env.connect(t, "alice-all")
	for i := range 2 {
		var out apiCallOut
		if msg := callTool(t, cs, "api_call", map[string]any{"upstream": "api", "method": "GET", "path": "/v1/echo"}, &out); msg != "" || out.Status != 200 {
			t.Fatalf("call %d: %q status %d", i, msg, out.Status)
		}
	}
	want := []string{"Bearer upstream-token-1", "Bearer upstream-token-2"}
	if diff := cmp.Diff(want, api.authorizations()); diff != "" {
		t.Errorf("upstream Authorization headers (-want +got):\n%s", diff)
	}
}
