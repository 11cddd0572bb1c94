package mcp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHostileJSONRPCBodies sends bodies built to exhaust a parser: deep
// nesting (a recursive decoder would overflow its stack) and batches of
// many thousands of calls. Each gets a 4xx or a JSON-RPC error answer,
// never a crash or a 5xx, and the server answers a normal call after.
func TestHostileJSONRPCBodies(t *testing.T) {
	env := newTestEnv(t, nil)
	sid, _ := env.rawSession(t, "alice-all")
	const depth = 400_000 // 800 KB of brackets, under the 1 MiB cap
	var batch strings.Builder
	batch.WriteByte('[')
	for i := range 8_000 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`, i+10)
	}
	batch.WriteByte(']')
	bodies := map[string]string{
		"nested arrays":                strings.Repeat("[", depth) + strings.Repeat("]", depth),
		"nested objects in params":     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":` + strings.Repeat(`{"a":`, depth/3) + "1" + strings.Repeat("}", depth/3) + "}}",
		"nested arrays in a note body": `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}}}",
		"unterminated nesting":         strings.Repeat(`{"a":[`, depth/6),
		"a batch of 8,000 note_save calls (900 KB, under the byte cap)": batch.String(),
		"a batch of 100,000 empty objects":                              "[" + strings.Repeat("{},", 99_999) + "{}]",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			for _, session := range []string{sid, ""} {
				h := map[string]string{"Authorization": "Bearer alice-all"}
				if session != "" {
					h[sessionIDHeader] = session
					h["MCP-Protocol-Version"] = "2025-06-18"
				}
				resp := env.post(t, body, h)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestEntityTooLarge {
					t.Errorf("session %q: status %d: %.200s (each body is under the 1 MiB cap, so the parsing is what is tested)", session, resp.StatusCode, b)
				}
				if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), `"error"`) {
					t.Errorf("session %q: a hostile body was answered without an error: %.200s", session, b)
				}
			}
			env.settle(t, "alice")
			if st := env.ping(t, "alice-all", sid); st != http.StatusOK {
				t.Errorf("ping after the body: status %d", st)
			}
		})
	}
	if notes, _ := env.notes.ListNotes(t.Context(), "alice"); len(notes) != 0 {
		t.Errorf("%d notes were saved from hostile batches; want none (batches are not part of the protocol version in use)", len(notes))
	}
}

func TestScanJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		max       int
		want      bool
		wantBatch int
	}{
		{"flat is not deep", `{"a":1,"b":[1,2]}`, 2, false, 0},
		{"exactly the limit passes", `[[[]]]`, 3, false, 1},
		{"one past the limit is deep", `[[[[]]]]`, 3, true, 1},
		{"brackets in strings do not count", `{"a":"[[[[[[[["}`, 2, false, 0},
		{"an escaped quote does not end the string", `{"a":"\"[[[[[["}`, 2, false, 0},
		{"an escaped backslash does end it", `{"a":"\\"}` + `[[[`, 2, true, 0},
		{"objects and arrays both count", `{"a":[{"b":[{}]}]}`, 4, true, 0},
		{"unterminated nesting counts as it goes", strings.Repeat("[", 1001), 1000, true, 1},
		{"a batch counts its top-level elements", `[{"a":[1,2,3]},{"b":"x,y"},{}]`, 10, false, 3},
		{"commas inside elements do not count", ` [{"a":{"b":1,"c":2}}]`, 10, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, batch := scanJSON([]byte(tt.body), tt.max)
			if got != tt.want || (!got && batch != tt.wantBatch) {
				t.Errorf("scanJSON(%q, %d) = %v, %d; want %v, %d", tt.body, tt.max, got, batch, tt.want, tt.wantBatch)
			}
		})
	}
}

func TestBatchesOverTheCapAreRefusedBeforeDecoding(t *testing.T) {
	env := newTestEnv(t, nil)
	batch := func(n int) string {
		calls := make([]string, n)
		for i := range calls {
			calls[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+1)
		}
		return "[" + strings.Join(calls, ",") + "]"
	}
	resp := env.post(t, batch(maxBatch+1), map[string]string{"Authorization": "Bearer alice-all"})
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "-32600") {
		t.Errorf("a batch of %d: status %d %.200s; want 400 with -32600", maxBatch+1, resp.StatusCode, b)
	}
	resp = env.post(t, batch(3), map[string]string{"Authorization": "Bearer alice-all"})
	if b, _ := io.ReadAll(resp.Body); strings.Contains(string(b), "more than") {
		t.Errorf("a batch of 3 was refused for its size: %.200s", b)
	}
}

func TestDeepBodiesGetAParseError(t *testing.T) {
	env := newTestEnv(t, nil)
	sid, _ := env.rawSession(t, "alice-all")
	for _, depth := range []int{maxJSONDepth + 1, 400_000} {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}}}"
		resp := env.post(t, body, map[string]string{"Authorization": "Bearer alice-all", sessionIDHeader: sid, "MCP-Protocol-Version": "2025-06-18"})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "-32700") {
			t.Errorf("depth %d: status %d %.200s; want 400 with a JSON-RPC parse error", depth, resp.StatusCode, b)
		}
	}
	body := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{"x":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + "}}}"
	resp := env.post(t, body, map[string]string{"Authorization": "Bearer alice-all", sessionIDHeader: sid, "MCP-Protocol-Version": "2025-06-18"})
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || strings.Contains(string(b), "-32700") {
		t.Errorf("50 levels: status %d %.200s; want an answer", resp.StatusCode, b)
	}
}
