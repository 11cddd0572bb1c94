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
	for i := range 20_000 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`, i+10)
	}
	batch.WriteByte(']')
	bodies := map[string]string{
		"nested arrays":                     strings.Repeat("[", depth) + strings.Repeat("]", depth),
		"nested objects in params":          `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":` + strings.Repeat(`{"a":`, depth/3) + "1" + strings.Repeat("}", depth/3) + "}}",
		"nested arrays in a note body":      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}}}",
		"unterminated nesting":              strings.Repeat(`{"a":[`, depth/6),
		"a batch of 20,000 note_save calls": batch.String(),
		"a batch of 100,000 empty objects":  "[" + strings.Repeat("{},", 99_999) + "{}]",
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
				if resp.StatusCode >= 500 {
					t.Errorf("session %q: status %d: %.200s", session, resp.StatusCode, b)
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
