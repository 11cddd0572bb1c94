package mcp

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProtectedResourceMetadata(t *testing.T) {
	env := newTestEnv(t, nil)
	want := map[string]any{
		"resource":                 env.ts.URL + "/mcp",
		"authorization_servers":    []any{env.ts.URL},
		"scopes_supported":         []any{"notes:read", "notes:write", "api:call"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "mcpd",
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run(path+" serves the metadata of ISSUER/mcp", func(t *testing.T) {
			resp, err := http.Get(env.ts.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d; want 200", resp.StatusCode)
			}
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProtectedResourceMetadataIssuerPath: with --issuer https://host/mcpd
// the metadata is also at the RFC 9728 §3.1 location of ISSUER/mcp, and
// the challenge names the one under the issuer (SEP-2351).
func TestProtectedResourceMetadataIssuerPath(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Issuer += "/mcpd" })
	issuer := env.ts.URL + "/mcpd"
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcpd/mcp", "/.well-known/oauth-protected-resource/mcp"} {
		t.Run(path+" serves the metadata of ISSUER/mcp", func(t *testing.T) {
			resp, err := http.Get(env.ts.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			if got.Resource != issuer+"/mcp" || len(got.AuthorizationServers) != 1 || got.AuthorizationServers[0] != issuer {
				t.Errorf("resource %q, authorization_servers %q; want %s/mcp and [%s]", got.Resource, got.AuthorizationServers, issuer, issuer)
			}
		})
	}
	t.Run("the challenge names the metadata under the issuer", func(t *testing.T) {
		resp, err := http.Post(env.ts.URL+"/mcp", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := `resource_metadata="` + issuer + `/.well-known/oauth-protected-resource/mcp"`
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, want) {
			t.Errorf("WWW-Authenticate %q; want it to contain %s", got, want)
		}
	})
}
