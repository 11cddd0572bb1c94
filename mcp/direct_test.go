package mcp

import (
	"context"
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
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawCall is one HTTP request to /mcp as a 2026-07-28 client sends it:
// a JSON-RPC call with the per-request _meta and the headers that go with
// it, which a test case may then spoil.
type rawCall struct {
	method string
	name   string         // Mcp-Name; "" for methods without one
	params map[string]any // without _meta
	// edit may change the headers and the message (its "params" holds
	// "_meta") before it is encoded.
	edit func(h http.Header, msg map[string]any)
	// raw may change the encoded body.
	raw func(string) string
}

// build returns the body and headers of c, sent with token.
func (c rawCall) build(t testing.TB, token string) (string, http.Header) {
	t.Helper()
	params := map[string]any{"_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion":    v2026,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw-2026", "version": "1"},
	}}
	for k, v := range c.params {
		params[k] = v
	}
	msg := map[string]any{"jsonrpc": "2.0", "id": 7, "method": c.method, "params": params}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	h.Set("Mcp-Protocol-Version", v2026)
	h.Set("Mcp-Method", c.method)
	if c.name != "" {
		h.Set("Mcp-Name", c.name)
	}
	if c.edit != nil {
		c.edit(h, msg)
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if c.raw != nil {
		body = c.raw(body)
	}
	return body, h
}

// answer is what a client sees of a response.
type answer struct {
	Status       int
	ContentType  string
	CacheControl string
	Body         string
}

// do sends c to env with token and returns the answer.
func (env *testEnv) do(t testing.TB, token string, c rawCall) answer {
	t.Helper()
	body, h := c.build(t, token)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, env.ts.URL+Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), string(b)}
}

// directCalls is how many calls the direct path has sent on env's shared
// sessions.
func (env *testEnv) directCalls() int64 {
	if env.srv.shared == nil {
		return 0
	}
	var n int64
	for i := range env.srv.shared.slots {
		if c := env.srv.shared.slots[i].Load(); c != nil {
			n += c.nextID.Load()
		}
	}
	return n
}

// Request edits for the cases below.
func setHeader(k, v string) func(http.Header, map[string]any) {
	return func(h http.Header, _ map[string]any) { h.Set(k, v) }
}

func setMeta(k string, v any) func(http.Header, map[string]any) {
	return func(_ http.Header, m map[string]any) { m["params"].(map[string]any)["_meta"].(map[string]any)[k] = v }
}

func setField(k string, v any) func(http.Header, map[string]any) {
	return func(_ http.Header, m map[string]any) { m[k] = v }
}

func toolCall(name string, args map[string]any) rawCall {
	return rawCall{method: "tools/call", name: name, params: map[string]any{"name": name, "arguments": args}}
}

func (c rawCall) with(edit func(http.Header, map[string]any)) rawCall {
	c.edit = edit
	return c
}

func (c rawCall) withRaw(raw func(string) string) rawCall {
	c.raw = raw
	return c
}

// directCases are requests of every kind the direct path serves, and of
// every kind it must leave to the go-sdk's stateless handler because one
// of the transport's checks would fail or because it is not on the path.
// direct says which.
var directCases = []struct {
	name   string
	call   rawCall
	direct bool
}{
	{"tools/call whoami", toolCall("whoami", map[string]any{}), true},
	{"tools/call note_save", toolCall("note_save", map[string]any{"title": "t", "body": "b", "tags": []string{"x"}}), true},
	{"tools/call note_list", toolCall("note_list", map[string]any{}), true},
	{"tools/call note_get of a saved note", toolCall("note_get", map[string]any{"id": "n1"}), true},
	{"tools/call note_get of no note (a tool error)", toolCall("note_get", map[string]any{"id": "nope"}), true},
	{"tools/call note_get with arguments of the wrong type", toolCall("note_get", map[string]any{"id": 5}), true},
	{"tools/call note_get without its argument", toolCall("note_get", map[string]any{}), true},
	{"tools/call note_search", toolCall("note_search", map[string]any{"query": "t"}), true},
	{"tools/call api_call of no upstream", toolCall("api_call", map[string]any{"upstream": "x", "method": "GET", "path": "/"}), true},
	{"tools/list", rawCall{method: "tools/list"}, true},
	{"prompts/list", rawCall{method: "prompts/list"}, true},
	{"prompts/get summarize_notes", rawCall{method: "prompts/get", name: "summarize_notes", params: map[string]any{"name": "summarize_notes"}}, true},
	{"prompts/get of no prompt", rawCall{method: "prompts/get", name: "nope", params: map[string]any{"name": "nope"}}, true},
	{"resources/list", rawCall{method: "resources/list"}, true},
	{"resources/templates/list", rawCall{method: "resources/templates/list"}, true},
	{"resources/read of a saved note", rawCall{method: "resources/read", name: "note://n1", params: map[string]any{"uri": "note://n1"}}, true},
	{"resources/read of no note", rawCall{method: "resources/read", name: "note://nope", params: map[string]any{"uri": "note://nope"}}, true},
	{"resources/read of a URI no template matches", rawCall{method: "resources/read", name: "file:///etc/passwd", params: map[string]any{"uri": "file:///etc/passwd"}}, true},
	{"a string id", toolCall("whoami", map[string]any{}).with(setField("id", "abc")), true},
	{"a fractional id (the go-sdk keeps its integer part)", toolCall("whoami", map[string]any{}).with(setField("id", 2.5)), true},
	{"Content-Type with a charset", toolCall("whoami", map[string]any{}).with(setHeader("Content-Type", "application/json; charset=utf-8")), true},
	{"no clientCapabilities in _meta (the session refuses it)", rawCall{method: "tools/list", edit: func(_ http.Header, m map[string]any) {
		delete(m["params"].(map[string]any)["_meta"].(map[string]any), "io.modelcontextprotocol/clientCapabilities")
	}}, true},
	{"clientCapabilities that are not an object", rawCall{method: "tools/list"}.with(setMeta("io.modelcontextprotocol/clientCapabilities", "all")), true},
	{"clientInfo that is not an object", rawCall{method: "tools/list"}.with(setMeta("io.modelcontextprotocol/clientInfo", 5)), true},

	{"_meta given twice, the version in the last", toolCall("whoami", map[string]any{}).withRaw(func(b string) string {
		return strings.Replace(b, `"_meta":{`, `"_meta":{"x":1},"_meta":{`, 1)
	}), true},

	{"_meta given twice, the version in the first", toolCall("whoami", map[string]any{}).withRaw(func(b string) string {
		return strings.Replace(b, `"name":"whoami"`, `"name":"whoami","_meta":{}`, 1)
	}), false},
	{"_meta that is not an object", toolCall("whoami", map[string]any{}).with(func(_ http.Header, m map[string]any) {
		m["params"].(map[string]any)["_meta"] = "2026-07-28"
	}), false},
	{"server/discover", rawCall{method: "server/discover"}, false},
	{"initialize", rawCall{method: "initialize"}, false},
	{"ping", rawCall{method: "ping"}, false},
	{"an unknown method", rawCall{method: "nope/nope"}, false},
	{"a tool mcpd does not have", toolCall("nope", map[string]any{}), false},
	{"Mcp-Method differs from the body", toolCall("whoami", map[string]any{}).with(setHeader("Mcp-Method", "tools/list")), false},
	{"Mcp-Name differs from the body", toolCall("whoami", map[string]any{}).with(setHeader("Mcp-Name", "note_list")), false},
	{"no Mcp-Name", toolCall("whoami", map[string]any{}).with(func(h http.Header, _ map[string]any) { h.Del("Mcp-Name") }), false},
	{"Mcp-Name differs from resources/read's uri", rawCall{method: "resources/read", name: "note://a", params: map[string]any{"uri": "note://b"}}, false},
	{"params that do not decode as tools/call's", toolCall("whoami", map[string]any{}).with(func(_ http.Header, m map[string]any) {
		m["params"].(map[string]any)["requestState"] = 5
	}), false},
	{"no Mcp-Protocol-Version", toolCall("whoami", map[string]any{}).with(func(h http.Header, _ map[string]any) { h.Del("Mcp-Protocol-Version") }), false},
	{"a version header differing from _meta", toolCall("whoami", map[string]any{}).with(setMeta("io.modelcontextprotocol/protocolVersion", "2099-01-01")), false},
	{"an unsupported version in both", toolCall("whoami", map[string]any{}).with(func(h http.Header, m map[string]any) {
		h.Set("Mcp-Protocol-Version", "2099-01-01")
		setMeta("io.modelcontextprotocol/protocolVersion", "2099-01-01")(h, m)
	}), false},
	{"a Last-Event-ID header", toolCall("whoami", map[string]any{}).with(setHeader("Last-Event-ID", "x_1")), false},
	{"Content-Type text/plain", toolCall("whoami", map[string]any{}).with(setHeader("Content-Type", "text/plain")), false},
	{"Accept without text/event-stream", toolCall("whoami", map[string]any{}).with(setHeader("Accept", "application/json")), false},
	{"Accept */*", toolCall("whoami", map[string]any{}).with(setHeader("Accept", "*/*")), false},
	{"jsonrpc 1.0", toolCall("whoami", map[string]any{}).with(setField("jsonrpc", "1.0")), false},
	{"no id", toolCall("whoami", map[string]any{}).with(func(_ http.Header, m map[string]any) { delete(m, "id") }), false},
	{"a null id", toolCall("whoami", map[string]any{}).with(setField("id", nil)), false},
	{"an id that is an object", toolCall("whoami", map[string]any{}).with(setField("id", map[string]any{})), false},
	{"an error member that is not an error object", toolCall("whoami", map[string]any{}).with(setField("error", "x")), false},
	{"a batch", toolCall("whoami", map[string]any{}).withRaw(func(b string) string { return "[" + b + "]" }), false},
	{"trailing bytes after the call", toolCall("whoami", map[string]any{}).withRaw(func(b string) string { return b + "}" }), false},
	{"arguments nested deeper than the go-sdk decodes", toolCall("whoami", map[string]any{}).withRaw(func(b string) string {
		return strings.Replace(b, `"arguments":{}`, `"arguments":{"x":`+strings.Repeat("[", 1001)+strings.Repeat("]", 1001)+`}`, 1)
	}), false},
}

// TestDirectPathAnswersAsTheSDK sends the same requests, in the same
// order, to a server with the direct path and to one whose every request
// goes through the go-sdk's handlers (an Extension turns the direct path
// off), and compares what a client sees: status, Content-Type,
// Cache-Control and the body byte for byte. It also counts what went the
// direct way.
func TestDirectPathAnswersAsTheSDK(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC) }
	direct := newTestEnv(t, nil)
	viaSDK := newTestEnv(t, func(c *Config) { c.Extension = &Extension{} })
	direct.notes.now, viaSDK.notes.now = fixed, fixed
	if viaSDK.srv.shared != nil {
		t.Fatal("a server with an Extension has a direct path")
	}
	for _, tc := range directCases {
		t.Run(tc.name, func(t *testing.T) {
			before := direct.directCalls()
			got := direct.do(t, "alice-all", tc.call)
			want := viaSDK.do(t, "alice-all", tc.call)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("direct path answer (-go-sdk +direct):\n%s", diff)
			}
			if went := direct.directCalls() > before; went != tc.direct {
				t.Errorf("went the direct way = %v; want %v", went, tc.direct)
			}
		})
	}
}

// TestDirectCall checks directCall's reading of each case on its own, with
// the request as the bearer middleware hands it on.
func TestDirectCall(t *testing.T) {
	env := newTestEnv(t, nil)
	ti := fakeTokens["alice-all"]
	ti.Expiration = testExpiry
	for _, tc := range directCases {
		t.Run(tc.name, func(t *testing.T) {
			body, h := tc.call.build(t, "alice-all")
			r := httptest.NewRequest(http.MethodPost, env.ts.URL+Path, strings.NewReader(body))
			r.Header = h
			r = r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, &ti))
			call, _, ok := env.srv.directCall(r, []byte(body))
			if ok != tc.direct {
				t.Fatalf("directCall accepts it = %v; want %v", ok, tc.direct)
			}
			if !ok {
				return
			}
			extra := call.Extra.(*sdk.RequestExtra)
			if extra.TokenInfo != &ti {
				t.Error("the call does not carry the request's token")
			}
			if extra.Header.Get("Mcp-Method") != tc.call.method {
				t.Error("the call does not carry the request's headers")
			}
			if extra.CloseSSEStream == nil {
				t.Error("the call has no CloseSSEStream; a handler calling it would panic")
			}
		})
	}
	base := toolCall("whoami", map[string]any{})
	body, h := base.build(t, "alice-all")
	for _, tt := range []struct {
		name string
		ti   *auth.TokenInfo
		auth string
	}{
		{"a token expired by the wall clock", &auth.TokenInfo{UserID: "alice", Expiration: time.Now().Add(-time.Minute)}, "Bearer alice-all"},
		{"an Authorization header of three fields", &ti, "Bearer alice-all x"},
	} {
		t.Run(tt.name+" is left to the go-sdk", func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, env.ts.URL+Path, strings.NewReader(body))
			r.Header = h.Clone()
			r.Header.Set("Authorization", tt.auth)
			r = r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, tt.ti))
			if _, _, ok := env.srv.directCall(r, []byte(body)); ok {
				t.Error("directCall accepts it")
			}
		})
	}
}

// TestDirectPathKeepsCallersApart runs the calls of three principals at
// once on the shared sessions, every one with the same JSON-RPC id, and
// checks that each answer is its caller's: whoami names the caller, and
// note_list and resources/list hold the caller's notes alone.
func TestDirectPathKeepsCallersApart(t *testing.T) {
	env := newTestEnv(t, nil)
	callers := map[string]string{"alice-all": "alice", "bob-all": "bob", "machine-all": "client:robot"}
	for _, user := range callers {
		env.notes.add(t, user, "note of "+user, "b")
	}
	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, len(callers)*rounds*3)
	for token, user := range callers {
		for range rounds {
			wg.Go(func() {
				var who struct {
					Result struct {
						StructuredContent whoamiOut `json:"structuredContent"`
					} `json:"result"`
				}
				a := env.do(t, token, toolCall("whoami", map[string]any{}))
				if err := json.Unmarshal([]byte(a.Body), &who); err != nil || who.Result.StructuredContent.User != user {
					errs <- fmt.Errorf("%s: whoami answered %s", user, a.Body)
				}
				var list struct {
					Result struct {
						StructuredContent notesOut `json:"structuredContent"`
					} `json:"result"`
				}
				a = env.do(t, token, toolCall("note_list", map[string]any{}))
				if err := json.Unmarshal([]byte(a.Body), &list); err != nil || len(list.Result.StructuredContent.Notes) != 1 ||
					list.Result.StructuredContent.Notes[0].Title != "note of "+user {
					errs <- fmt.Errorf("%s: note_list answered %s", user, a.Body)
				}
				var res struct {
					Result struct {
						Resources []struct {
							Title string `json:"title"`
						} `json:"resources"`
					} `json:"result"`
				}
				a = env.do(t, token, rawCall{method: "resources/list"})
				if err := json.Unmarshal([]byte(a.Body), &res); err != nil || len(res.Result.Resources) != 1 ||
					res.Result.Resources[0].Title != "note of "+user {
					errs <- fmt.Errorf("%s: resources/list answered %s", user, a.Body)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := env.directCalls(); n != int64(len(callers)*rounds*3) {
		t.Errorf("%d calls went the direct way; want all %d", n, len(callers)*rounds*3)
	}
}

// TestOwnToolsBindNoParamHeaders: the direct path serves tools/call of
// mcpd's own tools without the go-sdk's Mcp-Param-* header check, which
// applies only to input-schema properties marked x-mcp-header. A tool
// that marks one must be kept off the direct path (directCall).
func TestOwnToolsBindNoParamHeaders(t *testing.T) {
	env := newTestEnv(t, nil)
	a := env.do(t, "alice-all", rawCall{method: "tools/list"})
	var list struct {
		Result struct {
			Tools []struct {
				Name        string          `json:"name"`
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(a.Body), &list); err != nil || len(list.Result.Tools) != len(env.srv.tools) {
		t.Fatalf("tools/list: %v, %s", err, a.Body)
	}
	for _, tool := range list.Result.Tools {
		if strings.Contains(string(tool.InputSchema), "x-mcp-header") {
			t.Errorf("tool %s binds a header (x-mcp-header): %s", tool.Name, tool.InputSchema)
		}
	}
}

// TestGoSDKClientTakesTheDirectPath: the calls of a real 2026-07-28
// client (the go-sdk's, v1.8.0) are the ones the direct path is for.
func TestGoSDKClientTakesTheDirectPath(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connectAt(t, "alice-all", v2026)
	before := env.directCalls()
	var who whoamiOut
	if msg := callTool(t, cs, "whoami", map[string]any{}, &who); msg != "" || who.User != "alice" {
		t.Fatalf("whoami: %q %+v", msg, who)
	}
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if n := env.directCalls() - before; n != 2 {
		t.Errorf("%d of the client's 2 calls went the direct way", n)
	}
}
