package mcp

import (
	"encoding/json"
	"net/http"
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
