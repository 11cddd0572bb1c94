package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// wantMetadata is the RFC 8414 document of a server at issuer iss with the
// test env's scopes, cimd telling whether it accepts client ID metadata
// documents.
func wantMetadata(iss string, cimd bool) map[string]any {
	return map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"registration_endpoint":                          iss + "/register",
		"revocation_endpoint":                            iss + "/revoke",
		"introspection_endpoint":                         iss + "/introspect",
		"scopes_supported":                               []any{"notes:read", "notes:write", "api:call"},
		"response_types_supported":                       []any{"code"},
		"response_modes_supported":                       []any{"query"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":          []any{"none", "client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":     []any{"none", "client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported":  []any{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []any{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          cimd,
	}
}

func TestMetadata(t *testing.T) {
	for _, cimd := range []bool{true, false} {
		e := newEnv(t, func(c *Config) { c.ClientMetadataDocuments = cimd })
		resp, err := http.Get(e.url("/.well-known/oauth-authorization-server"))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		want := wantMetadata(e.ts.URL, cimd)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("metadata with CIMD %v (-want +got):\n%s", cimd, diff)
		}
	}
}

// TestDiscoveryDocuments covers every metadata location MCP 2026-07-28
// clients try, for an issuer with and without a path (SEP-2351), and the
// OpenID Connect discovery document's truthful extra members.
func TestDiscoveryDocuments(t *testing.T) {
	getJSON := func(t *testing.T, u string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		if resp.StatusCode == http.StatusOK {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("GET %s: Content-Type %q; want application/json", u, ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
		}
		return resp.StatusCode, got
	}
	for _, tt := range []struct {
		name, path string
		// locations are the paths, as mcpd receives them, that serve
		// the RFC 8414 document and the OpenID Connect one.
		rfc8414, oidc []string
	}{
		{"an issuer without a path", "", []string{"/.well-known/oauth-authorization-server"}, []string{"/.well-known/openid-configuration"}},
		{"an issuer with a path behind a prefix-stripping proxy", "/mcpd",
			[]string{"/.well-known/oauth-authorization-server/mcpd", "/.well-known/oauth-authorization-server"},
			[]string{"/.well-known/openid-configuration/mcpd", "/.well-known/openid-configuration"}},
		{"an issuer with a deeper path", "/tools/mcpd",
			[]string{"/.well-known/oauth-authorization-server/tools/mcpd"},
			[]string{"/.well-known/openid-configuration/tools/mcpd"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Issuer += tt.path })
			iss := e.ts.URL + tt.path
			want := wantMetadata(iss, true)
			for _, p := range tt.rfc8414 {
				st, got := getJSON(t, e.url(p))
				if st != http.StatusOK {
					t.Fatalf("GET %s: status %d", p, st)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("RFC 8414 document at %s (-want +got):\n%s", p, diff)
				}
			}
			wantOIDC := map[string]any{
				"jwks_uri":                              iss + "/jwks.json",
				"subject_types_supported":               []any{"public"},
				"id_token_signing_alg_values_supported": []any{},
				"request_uri_parameter_supported":       false,
			}
			for k, v := range want {
				wantOIDC[k] = v
			}
			for _, p := range tt.oidc {
				st, got := getJSON(t, e.url(p))
				if st != http.StatusOK {
					t.Fatalf("GET %s: status %d", p, st)
				}
				if diff := cmp.Diff(wantOIDC, got); diff != "" {
					t.Errorf("OpenID Connect document at %s (-want +got):\n%s", p, diff)
				}
				// The go-sdk client's own validation: issuer echo, PKCE.
				if _, err := oauthex.GetAuthServerMeta(context.Background(), e.url(p), iss, http.DefaultClient); err != nil {
					t.Errorf("the go-sdk refuses the document at %s: %v", p, err)
				}
			}
			st, jwks := getJSON(t, e.url("/jwks.json"))
			if diff := cmp.Diff(map[string]any{"keys": []any{}}, jwks); st != http.StatusOK || diff != "" {
				t.Errorf("GET /jwks.json: status %d (-want +got):\n%s", st, diff)
			}
		})
	}

	t.Run("an issuer without a path has no path-inserted locations", func(t *testing.T) {
		e := newEnv(t, nil)
		if st, _ := getJSON(t, e.url("/.well-known/openid-configuration/mcpd")); st != http.StatusNotFound {
			t.Errorf("status %d; want 404", st)
		}
	})
	t.Run("the OpenID Connect document allows browser clients (CORS)", func(t *testing.T) {
		e := newEnv(t, nil)
		req, _ := http.NewRequest(http.MethodGet, e.url("/.well-known/openid-configuration"), nil)
		req.Header.Set("Origin", "http://localhost:6274")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:6274" {
			t.Errorf("Access-Control-Allow-Origin = %q", got)
		}
	})
}

func TestCORS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORSOrigins = []string{"https://inspector.example"} })
	tests := []struct {
		name, method, path, origin string
		wantAllow                  string
	}{
		{"MCP Inspector's origin may preflight /token", http.MethodOptions, "/token", "http://localhost:6274", "http://localhost:6274"},
		{"a loopback origin on any port may call /register", http.MethodOptions, "/register", "http://127.0.0.1:9999", "http://127.0.0.1:9999"},
		{"a configured origin may read the metadata", http.MethodGet, "/.well-known/oauth-authorization-server", "https://inspector.example", "https://inspector.example"},
		{"a configured origin may revoke", http.MethodOptions, "/revoke", "https://inspector.example", "https://inspector.example"},
		{"another origin is not allowed", http.MethodOptions, "/token", "https://evil.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.url(tt.path), nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q; want %q", got, tt.wantAllow)
			}
			if want := "WWW-Authenticate, DPoP-Nonce"; tt.wantAllow != "" && resp.Header.Get("Access-Control-Expose-Headers") != want {
				t.Errorf("Access-Control-Expose-Headers = %q; want %s", resp.Header.Get("Access-Control-Expose-Headers"), want)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	tests := []struct {
		name, remote, xff, want string
	}{
		{"the peer is used without proxies", "192.0.2.1:1234", "", "192.0.2.1"},
		{"X-Forwarded-For from an untrusted peer is ignored", "192.0.2.1:1234", "198.51.100.7", "192.0.2.1"},
		{"X-Forwarded-For from a trusted proxy is honoured", "10.1.2.3:1234", "198.51.100.7", "198.51.100.7"},
		{"the last untrusted hop wins", "10.1.2.3:1234", "203.0.113.9, 198.51.100.7, 10.9.9.9", "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := e.srv.clientAddr(r); got != tt.want {
				t.Errorf("clientAddr = %q; want %q", got, tt.want)
			}
		})
	}
}
