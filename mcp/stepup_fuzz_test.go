package mcp

import (
	"bytes"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/segmentio/encoding/json"
)

// FuzzMissingScopes checks the scope check against the SDK's own decoding:
// whenever the SDK would read a body as a call of a tool that needs a
// scope, the check asks for that scope of a token without it. A mismatch
// would let a body slip past the 403 step-up.
func FuzzMissingScopes(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","NAME":"whoami"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"note_delete"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"note://x"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize_notes"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"api_call"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save"}} trailing`,
		`{"jsonrpc":"2.0","method":"tools/call","id":1,"params":{"name":"note\u005fsave"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","_meta":"not an object"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":[1,{"x":null}],"name":"api_call"}}`,
	} {
		f.Add([]byte(seed))
	}
	env := newTestEnv(f, nil)
	none := &auth.TokenInfo{UserID: "alice"}
	f.Fuzz(func(t *testing.T, body []byte) {
		missing := env.srv.missingScopes(decodeCalls(body), none) // must not panic on anything
		msg, err := jsonrpc.DecodeMessage(body)
		if err != nil {
			return
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok {
			return
		}
		var params struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		}
		dec := json.NewDecoder(bytes.NewReader(req.Params))
		dec.DontMatchCaseInsensitiveStructFields()
		if len(req.Params) == 0 || dec.Decode(&params) != nil {
			return
		}
		c := rpcCall{Method: req.Method}
		c.Params.Name, c.Params.URI = params.Name, params.URI
		need := env.srv.scopesFor(c)
		for _, sc := range need {
			if !slices.Contains(missing, sc) {
				t.Fatalf("the SDK reads %q calling %q (needs %s) but the scope check asks for %v", body, params.Name, sc, missing)
			}
		}
	})
}
