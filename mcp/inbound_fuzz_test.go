package mcp

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/segmentio/encoding/json"
)

// FuzzInboundEra checks the dispatcher's reading of a body against the
// go-sdk's: whenever the SDK reads a call as a 2026-07-28 request (its
// _meta names that version or a later one), readInbound sends it to the
// stateless handler. A miss would send a 2026-07-28 request to the
// session handler, which answers it with -32022.
func FuzzInboundEra(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"IO.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":2026}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_META":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"_meta":{}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, ours, _ := decodeBody(body, false) // must not panic on anything
		msg, err := jsonrpc.DecodeMessage(body)
		if err != nil {
			return
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok || !req.IsCall() || len(req.Params) == 0 {
			return
		}
		var params struct {
			Meta map[string]any `json:"_meta"`
		}
		if _, err := json.Parse(req.Params, &params, json.DontMatchCaseInsensitiveStructFields); err != nil {
			return
		}
		v, _ := params.Meta[metaProtocolVersion].(string)
		if statelessVersion(v) && !ours {
			t.Fatalf("the SDK reads %q as a %s request but the dispatcher sends it to the session handler", body, v)
		}
	})
}
