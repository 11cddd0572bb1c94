package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// post sends a raw JSON-RPC POST to /mcp with the given headers.
func (env *testEnv) post(t *testing.T, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.ts.URL+Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestUnauthenticatedRequestsGetChallenges(t *testing.T) {
	env := newTestEnv(t, nil)
	prm := env.ts.URL + "/.well-known/oauth-protected-resource/mcp"
	noToken := `Bearer resource_metadata="` + prm + `", scope="notes:read notes:write api:call"`
	badToken := `Bearer error="invalid_token", error_description="the access token is invalid, expired, revoked or not meant for this resource", resource_metadata="` + prm + `", scope="notes:read notes:write api:call"`
	tests := []struct {
		name       string
		method     string
		header     map[string]string
		wantStatus int
		wantChall  string
	}{
		{"no Authorization header gets 401 with resource_metadata and scope", http.MethodPost, nil, 401, noToken},
		{"GET without a token gets 401 too", http.MethodGet, nil, 401, noToken},
		{"DELETE without a token gets 401 too", http.MethodDelete, nil, 401, noToken},
		{"a non-Bearer scheme counts as no token", http.MethodPost, map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, 401, noToken},
		{"an empty bearer counts as no token", http.MethodPost, map[string]string{"Authorization": "Bearer "}, 401, noToken},
		{"an unknown token gets invalid_token", http.MethodPost, map[string]string{"Authorization": "Bearer nope"}, 401, badToken},
		{"the scheme matches case-insensitively", http.MethodPost, map[string]string{"Authorization": "bEaReR nope"}, 401, badToken},
		{"a lower-case scheme with a valid token is accepted", http.MethodPost, map[string]string{"Authorization": "bearer alice-all"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, env.ts.URL+Path, strings.NewReader(initializeBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d (%s); want %d", resp.StatusCode, b, tt.wantStatus)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChall {
				t.Errorf("WWW-Authenticate = %q; want %q", got, tt.wantChall)
			}
		})
	}
}

func TestTokenInQueryIsIgnored(t *testing.T) {
	env := newTestEnv(t, nil)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.ts.URL+Path+"?access_token=alice-all", strings.NewReader(initializeBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d; want 401", resp.StatusCode)
	}
}

func TestExpiredTokenIsInvalid(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Now = func() time.Time { return testExpiry.Add(1) } })
	resp := env.post(t, initializeBody, map[string]string{"Authorization": "Bearer alice-all"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d; want 401", resp.StatusCode)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q; want error=\"invalid_token\"", got)
	}
}

// TestVerifierFailures: a verifier that cannot tell now (its storage does
// not answer: ErrUnavailable) gets 503 with Retry-After, which clients
// retry, and no challenge, which would send them to sign in again; any
// other failure of the verifier is a 500.
func TestVerifierFailures(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"the storage cannot answer now", fmt.Errorf("authz: looking up token: %w", ErrUnavailable), http.StatusServiceUnavailable},
		{"anything else", errors.New("boom"), http.StatusInternalServerError},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t, func(cfg *Config) {
				cfg.Verifier = func(context.Context, string, *http.Request) (*auth.TokenInfo, error) { return nil, c.err }
			})
			resp := env.post(t, initializeBody, map[string]string{"Authorization": "Bearer alice-all"})
			if resp.StatusCode != c.wantStatus {
				t.Errorf("status = %d; want %d", resp.StatusCode, c.wantStatus)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate = %q; want none", got)
			}
			if retry := resp.Header.Get("Retry-After"); (c.wantStatus == http.StatusServiceUnavailable) != (retry != "") {
				t.Errorf("Retry-After = %q on a %d", retry, resp.StatusCode)
			}
		})
	}
}

func TestScopeStepUp(t *testing.T) {
	env := newTestEnv(t, nil)
	prm := env.ts.URL + "/.well-known/oauth-protected-resource/mcp"
	call := func(id int, method, params string) string {
		return `{"jsonrpc":"2.0","id":` + string(rune('0'+id)) + `,"method":"` + method + `","params":` + params + `}`
	}
	tests := []struct {
		name      string
		token     string
		body      string
		wantScope string // "" means the request passes the scope check
	}{
		{"note_save with notes:read asks for notes:write plus notes:read", "alice-read", call(2, "tools/call", `{"name":"note_save","arguments":{"title":"t","body":"b"}}`), "notes:write notes:read"},
		{"note_delete with notes:read asks for notes:write plus notes:read", "alice-read", call(2, "tools/call", `{"name":"note_delete","arguments":{"id":"n1"}}`), "notes:write notes:read"},
		{"api_call with notes:read asks for api:call plus notes:read", "alice-read", call(2, "tools/call", `{"name":"api_call","arguments":{}}`), "api:call notes:read"},
		{"note_list with no scope asks for notes:read", "alice-none", call(2, "tools/call", `{"name":"note_list","arguments":{}}`), "notes:read"},
		{"resources/read with no scope asks for notes:read", "alice-none", call(2, "resources/read", `{"uri":"note://n1"}`), "notes:read"},
		{"prompts/get summarize_notes with no scope asks for notes:read", "alice-none", call(2, "prompts/get", `{"name":"summarize_notes","arguments":{"topic":"x"}}`), "notes:read"},
		{"a batch asks for every scope its calls need", "alice-none", `[` + call(2, "tools/call", `{"name":"note_save","arguments":{}}`) + `,` + call(3, "tools/call", `{"name":"note_get","arguments":{}}`) + `]`, "notes:write notes:read"},
		{"whoami needs no scope", "alice-none", call(2, "tools/call", `{"name":"whoami","arguments":{}}`), ""},
		{"tools/list needs no scope", "alice-none", call(2, "tools/list", `{}`), ""},
		{"note_save with notes:write passes", "alice-all", call(2, "tools/call", `{"name":"note_save","arguments":{"title":"t","body":"b"}}`), ""},
		{"an unknown tool is left to the SDK", "alice-none", call(2, "tools/call", `{"name":"nope","arguments":{}}`), ""},
		{"a body that is not JSON is left to the SDK", "alice-none", `{not json`, ""},
		{"field names match case-sensitively as in the SDK", "alice-read", call(2, "tools/call", `{"name":"note_save","NAME":"whoami","arguments":{"title":"t","body":"b"}}`), "notes:write notes:read"},
		{"a differently cased method is not a tools/call", "alice-none", call(2, "tools/call", `{"Name":"note_save"}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.post(t, tt.body, map[string]string{"Authorization": "Bearer " + tt.token})
			chall := resp.Header.Get("WWW-Authenticate")
			if tt.wantScope == "" {
				if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
					t.Fatalf("status = %d (%s); want the request to pass the scope check", resp.StatusCode, chall)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status = %d; want 403", resp.StatusCode)
			}
			want := `Bearer error="insufficient_scope", scope="` + tt.wantScope + `", resource_metadata="` + prm + `", error_description="the access token lacks a scope this request needs"`
			if diff := cmp.Diff(want, chall); diff != "" {
				t.Errorf("WWW-Authenticate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStepUpThenReauthorizedTokenSucceeds(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-read")
	_, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": "b"}})
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("note_save with notes:read: err = %v; want a 403 Forbidden error", err)
	}
	// The go-sdk client drops the session on 403; after re-authorizing
	// with notes:write it connects again.
	cs = env.connect(t, "alice-all")
	var out noteSaveOut
	if msg := callTool(t, cs, "note_save", map[string]any{"title": "t", "body": "b"}, &out); msg != "" {
		t.Fatalf("note_save after step-up: %s", msg)
	}
	if out.ID == "" {
		t.Errorf("note_save after step-up returned no id")
	}
}

func TestSessionIsBoundToItsUser(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.post(t, initializeBody, map[string]string{"Authorization": "Bearer alice-all"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: status %d", resp.StatusCode)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("initialize returned no Mcp-Session-Id")
	}
	tests := []struct {
		name       string
		method     string
		token      string
		wantStatus int
	}{
		{"another user's token cannot POST to the session", http.MethodPost, "bob-all", http.StatusForbidden},
		{"another user's token cannot open the session's SSE stream", http.MethodGet, "bob-all", http.StatusForbidden},
		{"another user's token cannot delete the session", http.MethodDelete, "bob-all", http.StatusForbidden},
		{"the same user with another token may use it", http.MethodPost, "alice-read", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, env.ts.URL+Path, strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+tt.token)
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				b, _ := io.ReadAll(resp.Body)
				t.Errorf("status = %d (%s); want %d", resp.StatusCode, b, tt.wantStatus)
			}
		})
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	body := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"` + strings.Repeat("x", 2048) + `"}}}`
	resp := env.post(t, body, map[string]string{"Authorization": "Bearer alice-all"})
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d; want 413", resp.StatusCode)
	}
}
