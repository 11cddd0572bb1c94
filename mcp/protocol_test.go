package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Protocol versions the tests speak.
const (
	v2026 = "2026-07-28"
	v2025 = "2025-11-25"
)

// rpcResponse is a JSON-RPC response as a client reads it.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result map[string]any  `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// modernRequest is one raw 2026-07-28 request: the JSON-RPC body with the
// per-request _meta and the headers a conforming client sends with it.
type modernRequest struct {
	method string
	params map[string]any // without _meta
	name   string         // Mcp-Name; "" for methods that have none
	// edit may change the headers and the _meta before sending.
	edit func(h http.Header, meta map[string]any)
}

// send POSTs r with token and returns the HTTP response and the JSON-RPC
// response it carried (application/json or the last message of an event
// stream).
func (env *testEnv) send(t *testing.T, token string, r modernRequest) (*http.Response, rpcResponse) {
	t.Helper()
	c := rawCall{method: r.method, name: r.name, params: r.params}
	if r.edit != nil {
		c.edit = func(h http.Header, msg map[string]any) {
			r.edit(h, msg["params"].(map[string]any)["_meta"].(map[string]any))
		}
	}
	body, h := c.build(t, token)
	return env.sendRaw(t, body, h)
}

// sendRaw POSTs body with the headers h (plus Content-Type and Accept).
func (env *testEnv) sendRaw(t *testing.T, body string, h http.Header) (*http.Response, rpcResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.ts.URL+Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp, readRPC(t, resp)
}

// readRPC reads the JSON-RPC response of an application/json or
// text/event-stream body; a body with none reads as the zero value.
func readRPC(t *testing.T, resp *http.Response) rpcResponse {
	t.Helper()
	var out rpcResponse
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var msg rpcResponse
				if json.Unmarshal([]byte(data), &msg) == nil && (msg.Result != nil || msg.Error != nil) {
					out = msg
				}
			}
		}
		return out
	}
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &out) != nil {
		return rpcResponse{}
	}
	return out
}

// connectAt opens a go-sdk client session asking for version.
func (env *testEnv) connectAt(t testing.TB, token, version string) *sdk.ClientSession {
	t.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	cs, err := client.Connect(t.Context(), &sdk.StreamableClientTransport{
		Endpoint:   env.ts.URL + Path,
		HTTPClient: &http.Client{Transport: bearerTransport{token: token}},
	}, &sdk.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect at %s with %s: %v", version, token, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestBothProtocolErasOnOneEndpoint(t *testing.T) {
	tests := []struct {
		name        string
		stateless   bool // Config.Stateless (--mcp-stateless)
		ask         string
		wantVersion string
		wantSession bool
	}{
		{"a 2026-07-28 client is served without a session", false, v2026, v2026, false},
		{"a 2025-11-25 client gets initialize and a session", false, v2025, v2025, true},
		{"a 2025-06-18 client gets initialize and a session", false, "2025-06-18", "2025-06-18", true},
		{"a 2025-03-26 client gets initialize and a session", false, "2025-03-26", "2025-03-26", true},
		{"with Stateless a 2026-07-28 client is served as before", true, v2026, v2026, false},
		{"with Stateless a 2025-11-25 client is served without a session", true, v2025, v2025, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) { c.Stateless = tt.stateless })
			cs := env.connectAt(t, "alice-all", tt.ask)
			if got := cs.InitializeResult().ProtocolVersion; got != tt.wantVersion {
				t.Errorf("negotiated version = %q; want %q", got, tt.wantVersion)
			}
			if got := cs.ID() != ""; got != tt.wantSession {
				t.Errorf("has a session = %v (id %q); want %v", got, cs.ID(), tt.wantSession)
			}
			var who whoamiOut
			if msg := callTool(t, cs, "whoami", map[string]any{}, &who); msg != "" || who.User != "alice" {
				t.Fatalf("whoami: %q %+v", msg, who)
			}
			var saved noteSaveOut
			if msg := callTool(t, cs, "note_save", map[string]any{"title": "t", "body": "b"}, &saved); msg != "" {
				t.Fatalf("note_save: %s", msg)
			}
			var got noteOut
			if msg := callTool(t, cs, "note_get", map[string]any{"id": saved.ID}, &got); msg != "" || got.Title != "t" {
				t.Fatalf("note_get: %q %+v", msg, got)
			}
		})
	}
}

func TestErasSideBySide(t *testing.T) {
	env := newTestEnv(t, nil)
	modern := env.connectAt(t, "alice-all", v2026)
	legacy := env.connectAt(t, "bob-all", v2025)
	for range 3 {
		var a, b whoamiOut
		if msg := callTool(t, modern, "whoami", map[string]any{}, &a); msg != "" || a.User != "alice" {
			t.Fatalf("2026-07-28 whoami: %q %+v", msg, a)
		}
		if msg := callTool(t, legacy, "whoami", map[string]any{}, &b); msg != "" || b.User != "bob" {
			t.Fatalf("2025-11-25 whoami: %q %+v", msg, b)
		}
	}
}

func TestDiscover(t *testing.T) {
	env := newTestEnv(t, nil)
	resp, got := env.send(t, "alice-all", modernRequest{method: "server/discover"})
	if resp.StatusCode != http.StatusOK || got.Error != nil {
		t.Fatalf("server/discover: status %d, error %+v", resp.StatusCode, got.Error)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		t.Errorf("Mcp-Session-Id = %q; a 2026-07-28 response carries none", sid)
	}
	var versions []string
	for _, v := range got.Result["supportedVersions"].([]any) {
		versions = append(versions, v.(string))
	}
	// Every version is served on /mcp: 2026-07-28 statelessly, the others
	// through initialize and a session.
	if diff := cmp.Diff(sdk.SupportedProtocolVersions(), versions); diff != "" {
		t.Errorf("supportedVersions (-want +got):\n%s", diff)
	}
	caps, _ := got.Result["capabilities"].(map[string]any)
	for _, c := range []string{"tools", "resources", "prompts"} {
		if _, ok := caps[c]; !ok {
			t.Errorf("capabilities lack %q: %v", c, caps)
		}
	}
}

// TestTransportRules drives the 2026-07-28 transport rules through the
// whole /mcp handler (Origin, bearer, scope check, dispatcher, go-sdk).
// Where the go-sdk makes the rule, the test proves it reaches clients
// through mcpd.
func TestTransportRules(t *testing.T) {
	env := newTestEnv(t, nil)
	toolsCall := func(name string) map[string]any {
		return map[string]any{"name": name, "arguments": map[string]any{}}
	}
	tests := []struct {
		name       string
		req        modernRequest
		wantStatus int
		wantCode   int // JSON-RPC error code; 0 for a result
	}{
		{"a request whose headers match its body is served", modernRequest{method: "tools/call", name: "whoami", params: toolsCall("whoami")}, 200, 0},
		{"Mcp-Method differing from the body's method is HeaderMismatch", modernRequest{method: "tools/call", name: "whoami", params: toolsCall("whoami"),
			edit: func(h http.Header, _ map[string]any) { h.Set("Mcp-Method", "tools/list") }}, 400, -32020},
		{"Mcp-Name differing from the body's tool is HeaderMismatch", modernRequest{method: "tools/call", name: "whoami", params: toolsCall("whoami"),
			edit: func(h http.Header, _ map[string]any) { h.Set("Mcp-Name", "note_list") }}, 400, -32020},
		{"a missing Mcp-Name on tools/call is HeaderMismatch", modernRequest{method: "tools/call", params: toolsCall("whoami")}, 400, -32020},
		{"Mcp-Name differing from resources/read's uri is HeaderMismatch", modernRequest{method: "resources/read", name: "note://a", params: map[string]any{"uri": "note://b"}}, 400, -32020},
		{"a protocol version header differing from _meta is HeaderMismatch", modernRequest{method: "tools/list",
			edit: func(_ http.Header, m map[string]any) { m["io.modelcontextprotocol/protocolVersion"] = "2099-01-01" }}, 400, -32020},
		{"_meta naming 2026-07-28 without the version header is HeaderMismatch", modernRequest{method: "tools/list",
			edit: func(h http.Header, _ map[string]any) { h.Del("Mcp-Protocol-Version") }}, 400, -32020},
		{"a 2026-07-28 request without clientCapabilities is invalid params", modernRequest{method: "tools/list",
			edit: func(_ http.Header, m map[string]any) { delete(m, "io.modelcontextprotocol/clientCapabilities") }}, 400, -32602},
		{"a version the server does not support is UnsupportedProtocolVersion", modernRequest{method: "tools/list",
			edit: func(h http.Header, m map[string]any) {
				h.Set("Mcp-Protocol-Version", "2099-01-01")
				m["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
			}}, 400, -32022},
		{"initialize is not a 2026-07-28 method", modernRequest{method: "initialize"}, 404, -32601},
		{"an unknown method is method not found", modernRequest{method: "nope/nope"}, 404, -32601},
		{"an unknown resource is invalid params", modernRequest{method: "resources/read", name: "note://nope", params: map[string]any{"uri": "note://nope"}}, 400, -32602},
		{"a URI no resource template matches is invalid params", modernRequest{method: "resources/read", name: "file:///etc/passwd", params: map[string]any{"uri": "file:///etc/passwd"}}, 400, -32602},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := env.send(t, "alice-all", tt.req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("HTTP status = %d; want %d", resp.StatusCode, tt.wantStatus)
			}
			code := 0
			if got.Error != nil {
				code = got.Error.Code
			}
			if code != tt.wantCode {
				t.Errorf("JSON-RPC error = %+v; want code %d", got.Error, tt.wantCode)
			}
			if string(got.ID) != "7" {
				t.Errorf("response id = %s; want the request's 7", got.ID)
			}
		})
	}
}

func TestUnknownResourceNamesTheURI(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, uri := range []string{"note://nope", "file:///etc/passwd"} {
		_, got := env.send(t, "alice-all", modernRequest{method: "resources/read", name: uri, params: map[string]any{"uri": uri}})
		if got.Error == nil || got.Error.Code != -32602 {
			t.Fatalf("%s: error = %+v; want -32602", uri, got.Error)
		}
		var data struct {
			URI string `json:"uri"`
		}
		if err := json.Unmarshal(got.Error.Data, &data); err != nil || data.URI != uri {
			t.Errorf("%s: error data %s; want the uri", uri, got.Error.Data)
		}
	}
}

func TestUnsupportedVersionListsSupported(t *testing.T) {
	env := newTestEnv(t, nil)
	_, got := env.send(t, "alice-all", modernRequest{method: "server/discover", edit: func(h http.Header, m map[string]any) {
		h.Set("Mcp-Protocol-Version", "2099-01-01")
		m["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
	}})
	if got.Error == nil || got.Error.Code != -32022 {
		t.Fatalf("error = %+v; want -32022", got.Error)
	}
	var data struct {
		Supported []string `json:"supported"`
		Requested string   `json:"requested"`
	}
	if err := json.Unmarshal(got.Error.Data, &data); err != nil {
		t.Fatalf("error data %s: %v", got.Error.Data, err)
	}
	want := struct {
		Supported []string `json:"supported"`
		Requested string   `json:"requested"`
	}{sdk.SupportedProtocolVersions(), "2099-01-01"}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("error data (-want +got):\n%s", diff)
	}
}

func TestEveryModernResultNamesItsTypeAndServer(t *testing.T) {
	env := newTestEnv(t, nil)
	note := env.notes.add(t, "alice", "Title", "body")
	tests := []modernRequest{
		{method: "server/discover"},
		{method: "tools/list"},
		{method: "tools/call", name: "whoami", params: map[string]any{"name": "whoami", "arguments": map[string]any{}}},
		{method: "tools/call", name: "note_get", params: map[string]any{"name": "note_get", "arguments": map[string]any{"id": "missing"}}},
		{method: "resources/list"},
		{method: "resources/templates/list"},
		{method: "resources/read", name: "note://" + note, params: map[string]any{"uri": "note://" + note}},
		{method: "prompts/list"},
		{method: "prompts/get", name: "summarize_notes", params: map[string]any{"name": "summarize_notes", "arguments": map[string]any{"topic": "Title"}}},
	}
	for _, r := range tests {
		t.Run(r.method+" "+r.name, func(t *testing.T) {
			resp, got := env.send(t, "alice-all", r)
			if resp.StatusCode != http.StatusOK || got.Error != nil || got.Result == nil {
				t.Fatalf("status %d, error %+v", resp.StatusCode, got.Error)
			}
			if rt := got.Result["resultType"]; rt != "complete" {
				t.Errorf("resultType = %v; want complete", rt)
			}
			meta, _ := got.Result["_meta"].(map[string]any)
			info, _ := meta["io.modelcontextprotocol/serverInfo"].(map[string]any)
			if info["name"] != "mcpd" || info["version"] == nil {
				t.Errorf("_meta serverInfo = %v; want mcpd and its version", meta["io.modelcontextprotocol/serverInfo"])
			}
		})
	}
}

func TestCacheHints(t *testing.T) {
	env := newTestEnv(t, nil)
	note := env.notes.add(t, "alice", "Title", "body")
	type hints struct {
		TTLMs any
		Scope any
	}
	public := hints{float64(staticListTTL.Milliseconds()), "public"}
	private := hints{float64(0), "private"}
	tests := []struct {
		name string
		req  modernRequest
		want hints
	}{
		{"server/discover is the same for everyone", modernRequest{method: "server/discover"}, public},
		{"tools/list is the same for everyone", modernRequest{method: "tools/list"}, public},
		{"prompts/list is the same for everyone", modernRequest{method: "prompts/list"}, public},
		{"resources/templates/list is the same for everyone", modernRequest{method: "resources/templates/list"}, public},
		{"resources/list holds the caller's notes: private and stale at once", modernRequest{method: "resources/list"}, private},
		{"resources/read of a note is private and stale at once", modernRequest{method: "resources/read", name: "note://" + note, params: map[string]any{"uri": "note://" + note}}, private},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := env.send(t, "alice-all", tt.req)
			if got.Result == nil {
				t.Fatalf("no result: %+v", got.Error)
			}
			if diff := cmp.Diff(tt.want, hints{got.Result["ttlMs"], got.Result["cacheScope"]}); diff != "" {
				t.Errorf("ttlMs, cacheScope (-want +got):\n%s", diff)
			}
		})
	}
}

func TestToolsAreListedInNameOrder(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, version := range []string{v2026, v2025} {
		t.Run(version, func(t *testing.T) {
			var first []string
			for i := range 5 {
				cs := env.connectAt(t, "alice-all", version)
				res, err := cs.ListTools(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, tl := range res.Tools {
					names = append(names, tl.Name)
				}
				if !slices.IsSorted(names) {
					t.Errorf("tools/list order %v; want sorted by name", names)
				}
				if i == 0 {
					first = names
				} else if diff := cmp.Diff(first, names); diff != "" {
					t.Errorf("tools/list changed between calls (-first +now):\n%s", diff)
				}
			}
		})
	}
}

func TestModernGETAndDELETEAreNotAllowed(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), method, env.ts.URL+Path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer alice-all")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", v2026)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("status = %d; want 405 (2026-07-28 has no standalone stream and no session to delete)", resp.StatusCode)
			}
		})
	}
}

func TestModernRequestsPassTheScopeCheck(t *testing.T) {
	env := newTestEnv(t, nil)
	prm := env.ts.URL + "/.well-known/oauth-protected-resource/mcp"
	tests := []struct {
		name      string
		token     string
		req       modernRequest
		wantScope string // "" means the request passes the scope check
	}{
		{"note_save with notes:read asks for notes:write plus notes:read", "alice-read",
			modernRequest{method: "tools/call", name: "note_save", params: map[string]any{"name": "note_save", "arguments": map[string]any{"title": "t", "body": "b"}}}, "notes:write notes:read"},
		{"resources/read with no scope asks for notes:read", "alice-none",
			modernRequest{method: "resources/read", name: "note://n1", params: map[string]any{"uri": "note://n1"}}, "notes:read"},
		{"the scope check reads the body, not Mcp-Name", "alice-read",
			modernRequest{method: "tools/call", name: "whoami", params: map[string]any{"name": "note_delete", "arguments": map[string]any{"id": "n1"}}}, "notes:write notes:read"},
		{"whoami needs no scope", "alice-none",
			modernRequest{method: "tools/call", name: "whoami", params: map[string]any{"name": "whoami", "arguments": map[string]any{}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := env.send(t, tt.token, tt.req)
			chall := resp.Header.Get("WWW-Authenticate")
			if tt.wantScope == "" {
				if resp.StatusCode != http.StatusOK || got.Error != nil {
					t.Fatalf("status %d (%s), error %+v; want a result", resp.StatusCode, chall, got.Error)
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

func TestModernResponsesAreJSONUnlessTheyAskForNotifications(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.Extension = &Extension{Register: func(s *sdk.Server) {
			s.AddTool(&sdk.Tool{Name: "progress", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				if tok := req.Params.GetProgressToken(); tok != nil {
					if err := req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2}); err != nil {
						return nil, err
					}
				}
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "done"}}}, nil
			})
		}}
	})
	call := func(meta map[string]any) modernRequest {
		return modernRequest{method: "tools/call", name: "progress", params: map[string]any{"name": "progress", "arguments": map[string]any{}},
			edit: func(_ http.Header, m map[string]any) {
				for k, v := range meta {
					m[k] = v
				}
			}}
	}
	tests := []struct {
		name     string
		req      modernRequest
		wantType string
	}{
		{"a request that asks for no notifications is answered as JSON", call(nil), "application/json"},
		{"a request with a progress token gets an event stream", call(map[string]any{"progressToken": "p1"}), "text/event-stream"},
		{"a request with a log level gets an event stream", call(map[string]any{"io.modelcontextprotocol/logLevel": "info"}), "text/event-stream"},
		{"tools/list is answered as JSON", modernRequest{method: "tools/list"}, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := env.send(t, "alice-all", tt.req)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type = %q; want %s", ct, tt.wantType)
			}
			if got.Result == nil {
				t.Errorf("no result: %+v", got.Error)
			}
		})
	}
	t.Run("the progress notification travels on the event stream", func(t *testing.T) {
		progress := make(chan float64, 1)
		client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "1.0.0"}, &sdk.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, req *sdk.ProgressNotificationClientRequest) { progress <- req.Params.Progress },
		})
		cs, err := client.Connect(t.Context(), &sdk.StreamableClientTransport{
			Endpoint:   env.ts.URL + Path,
			HTTPClient: &http.Client{Transport: bearerTransport{token: "alice-all"}},
		}, &sdk.ClientSessionOptions{ProtocolVersion: v2026})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		params := &sdk.CallToolParams{Name: "progress", Arguments: map[string]any{}}
		params.SetProgressToken("p2")
		if _, err := cs.CallTool(t.Context(), params); err != nil {
			t.Fatal(err)
		}
		// The client hands notifications to its handler on its own
		// goroutine, possibly after the call has returned.
		select {
		case p := <-progress:
			if p != 1 {
				t.Errorf("progress = %v; want 1", p)
			}
		case <-time.After(10 * time.Second):
			t.Error("no progress notification arrived")
		}
	})
	t.Run("a 2025 session keeps its event streams", func(t *testing.T) {
		resp, _ := env.sendRaw(t, initializeBody, http.Header{"Authorization": {"Bearer alice-all"}})
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("initialize Content-Type = %q; want text/event-stream", ct)
		}
	})
}
