package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// testExpiry is when every test token expires.
var testExpiry = time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeTokens maps fixed token strings to what a verifier would say.
var fakeTokens = map[string]auth.TokenInfo{
	"alice-all":   {UserID: "alice", Scopes: []string{ScopeNotesRead, ScopeNotesWrite, ScopeAPICall}, Extra: map[string]any{"client_id": "vscode"}},
	"alice-read":  {UserID: "alice", Scopes: []string{ScopeNotesRead}, Extra: map[string]any{"client_id": "vscode"}},
	"alice-none":  {UserID: "alice", Scopes: []string{}, Extra: map[string]any{"client_id": "vscode"}},
	"bob-all":     {UserID: "bob", Scopes: []string{ScopeNotesRead, ScopeNotesWrite, ScopeAPICall}, Extra: map[string]any{"client_id": "cursor"}},
	"machine-all": {UserID: "client:robot", Scopes: []string{ScopeNotesRead, ScopeNotesWrite}, Extra: map[string]any{"client_id": "robot"}},
	"machine-api": {UserID: "client:robot", Scopes: []string{ScopeAPICall}, Extra: map[string]any{"client_id": "robot"}},
	// DPoP-bound to the key whose thumbprint is "jkt-1".
	"alice-bound":      {UserID: "alice", Scopes: []string{ScopeNotesRead, ScopeNotesWrite, ScopeAPICall}, Extra: map[string]any{"client_id": "ts2", ExtraJKT: "jkt-1"}},
	"alice-bound-read": {UserID: "alice", Scopes: []string{ScopeNotesRead}, Extra: map[string]any{"client_id": "ts2", ExtraJKT: "jkt-1"}},
}

// fakeVerifier accepts the tokens of fakeTokens; any other token is
// invalid, as a revoked or wrong-audience one would be.
func fakeVerifier(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	ti, ok := fakeTokens[token]
	if !ok {
		return nil, fmt.Errorf("unknown token: %w", auth.ErrInvalidToken)
	}
	ti.Expiration = testExpiry
	return &ti, nil
}

// testEnv is a Server mounted on a mux in an httptest server.
type testEnv struct {
	srv   *Server
	ts    *httptest.Server
	notes *memNotes
}

// newTestEnv starts a Server whose issuer is the httptest server's URL.
// edit may change the Config before New.
func newTestEnv(t testing.TB, edit func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{notes: newMemNotes()}
	var h http.Handler
	env.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(env.ts.Close)
	cfg := Config{Issuer: env.ts.URL, Verifier: fakeVerifier, Notes: env.notes}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.srv = srv
	r := mux.NewRouter()
	srv.Register(r)
	h = r
	return env
}

// bearerTransport adds "Authorization: Bearer <token>" to every request.
type bearerTransport struct {
	token string
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens a go-sdk client session to env with token.
func (env *testEnv) connect(t testing.TB, token string) *sdk.ClientSession {
	t.Helper()
	bt := bearerTransport{token: token}
	client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	cs, err := client.Connect(t.Context(), &sdk.StreamableClientTransport{
		Endpoint:   env.ts.URL + Path,
		HTTPClient: &http.Client{Transport: bt},
	}, nil)
	if err != nil {
		t.Fatalf("connect with %s: %v", token, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool and decodes its structured result into out. It
// fails the test on a protocol error, and returns the tool error text (""
// when the tool succeeded).
func callTool(t testing.TB, cs *sdk.ClientSession, name string, args any, out any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool %s: %v", name, err)
	}
	if res.IsError {
		var texts []string
		for _, c := range res.Content {
			if tc, ok := c.(*sdk.TextContent); ok {
				texts = append(texts, tc.Text)
			}
		}
		return strings.Join(texts, "\n")
	}
	if out != nil {
		data, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatalf("marshal structured content: %v", err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("decode %s result %s: %v", name, data, err)
		}
	}
	return ""
}

func TestWhoami(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name  string
		token string
		want  whoamiOut
	}{
		{"a user token names the user, its client, scopes and expiry", "alice-all", whoamiOut{User: "alice", ClientID: "vscode", Scopes: []string{ScopeNotesRead, ScopeNotesWrite, ScopeAPICall}, ExpiresAt: "2100-01-02T03:04:05Z"}},
		{"a token without scopes may still call whoami", "alice-none", whoamiOut{User: "alice", ClientID: "vscode", Scopes: []string{}, ExpiresAt: "2100-01-02T03:04:05Z"}},
		{"a client-credentials token is its own principal", "machine-all", whoamiOut{User: "client:robot", ClientID: "robot", Scopes: []string{ScopeNotesRead, ScopeNotesWrite}, ExpiresAt: "2100-01-02T03:04:05Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := env.connect(t, tt.token)
			var got whoamiOut
			if msg := callTool(t, cs, "whoami", map[string]any{}, &got); msg != "" {
				t.Fatalf("whoami failed: %s", msg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("whoami (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToolsDeclareSchemasAnnotationsAndScopes(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-none")
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type shape struct {
		ReadOnly, Destructive, Idempotent bool
		Scope                             string
	}
	got := map[string]shape{}
	for _, tl := range res.Tools {
		if tl.InputSchema == nil || tl.OutputSchema == nil {
			t.Errorf("tool %s: input or output schema missing", tl.Name)
		}
		if tl.Annotations == nil {
			t.Fatalf("tool %s: no annotations", tl.Name)
		}
		destructive := tl.Annotations.DestructiveHint != nil && *tl.Annotations.DestructiveHint
		scope := "any"
		for _, sc := range Scopes() {
			if strings.Contains(tl.Description, "Requires scope "+sc+".") {
				scope = sc
			}
		}
		got[tl.Name] = shape{tl.Annotations.ReadOnlyHint, destructive, tl.Annotations.IdempotentHint, scope}
	}
	want := map[string]shape{
		"whoami":      {ReadOnly: true, Idempotent: true, Scope: "any"},
		"note_save":   {Destructive: true, Scope: ScopeNotesWrite},
		"note_get":    {ReadOnly: true, Idempotent: true, Scope: ScopeNotesRead},
		"note_list":   {ReadOnly: true, Idempotent: true, Scope: ScopeNotesRead},
		"note_search": {ReadOnly: true, Idempotent: true, Scope: ScopeNotesRead},
		"note_delete": {Destructive: true, Idempotent: true, Scope: ScopeNotesWrite},
		"api_call":    {Destructive: true, Scope: ScopeAPICall},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	ok := Config{Issuer: "http://127.0.0.1:8080", Verifier: fakeVerifier, Notes: newMemNotes()}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"verifier is required", func(c *Config) { c.Verifier = nil }},
		{"notes store is required", func(c *Config) { c.Notes = nil }},
		{"issuer must be an absolute http URL", func(c *Config) { c.Issuer = "127.0.0.1:8080" }},
		{"allowed origin must be scheme://host", func(c *Config) { c.AllowedOrigins = []string{"example.com"} }},
		{"upstream base URL must be absolute", func(c *Config) { c.Upstreams = []Upstream{{Name: "x", BaseURL: "/api"}} }},
		{"upstream names are unique", func(c *Config) {
			c.Upstreams = []Upstream{{Name: "x", BaseURL: "http://a"}, {Name: "x", BaseURL: "http://b"}}
		}},
		{"bearer upstream needs its environment variable", func(c *Config) {
			c.Upstreams = []Upstream{{Name: "x", BaseURL: "http://a", Auth: UpstreamAuth{Type: "bearer", BearerEnv: "MCPD_TEST_UNSET_VARIABLE"}}}
		}},
		{"unknown upstream auth type", func(c *Config) {
			c.Upstreams = []Upstream{{Name: "x", BaseURL: "http://a", Auth: UpstreamAuth{Type: "basic"}}}
		}},
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("New(valid config): %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			if _, err := New(cfg); err == nil {
				t.Errorf("New succeeded; want an error")
			}
		})
	}
}

func TestPerformanceModesServeTheSameTools(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"stateless mode serves whoami and note tools", func(c *Config) { c.Stateless = true }},
		{"JSON responses serve whoami and note tools", func(c *Config) { c.JSONResponse = true }},
		{"stateless with JSON responses serves whoami and note tools", func(c *Config) { c.Stateless, c.JSONResponse = true, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, tt.edit)
			cs := env.connect(t, "alice-all")
			var who whoamiOut
			if msg := callTool(t, cs, "whoami", map[string]any{}, &who); msg != "" || who.User != "alice" {
				t.Fatalf("whoami: %q %+v", msg, who)
			}
			var saved noteSaveOut
			if msg := callTool(t, cs, "note_save", map[string]any{"title": "t", "body": "b"}, &saved); msg != "" {
				t.Fatalf("note_save: %s", msg)
			}
			bob := env.connect(t, "bob-all")
			if msg := callTool(t, bob, "note_get", map[string]any{"id": saved.ID}, nil); !strings.Contains(msg, "no note with id") {
				t.Errorf("bob note_get of alice's note: %q; want not found", msg)
			}
		})
	}
}
