package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/segmentio/encoding/json"
)

// rpcCall is the part of a JSON-RPC message the scope check reads.
type rpcCall struct {
	Method string `json:"method"`
	Params struct {
		Name string `json:"name"` // tools/call, prompts/get
		URI  string `json:"uri"`  // resources/read
	} `json:"params"`
}

// requireScopes answers 403 insufficient_scope when a POSTed tools/call,
// resources/read or prompts/get needs a scope the token lacks. It reads the
// body (bounded by MaxBodyBytes) and restores it for the SDK. A batch is
// refused when any of its calls would be. A body that is not JSON-RPC is
// left to the SDK to reject.
func (s *Server) requireScopes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		r.Body.Close()
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "reading request body failed", http.StatusBadRequest)
			return
		}
		if !utf8.Valid(body) {
			// JSON is UTF-8 (RFC 8259 §8.1). The SDK would quote the bad
			// bytes back in its error, making the answer invalid too.
			writeParseError(w, "the body is not valid UTF-8")
			return
		}
		switch tooDeep, batch := scanJSON(body, maxJSONDepth); {
		case tooDeep:
			// The decoder below recurses once per level: 400,000 levels
			// in a 1 MB body took 128 MB of goroutine stack.
			writeParseError(w, fmt.Sprintf("the body nests deeper than %d levels", maxJSONDepth))
			return
		case batch > maxBatch:
			// The SDK decodes a whole batch before it refuses one for the
			// protocol version: 0.6 s of CPU for 8,000 calls in 900 KB.
			writeRPCError(w, -32600, fmt.Sprintf("Invalid Request: a batch of more than %d messages", maxBatch))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ti, err := verifiedTokenInfo(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if missing := s.missingScopes(body, ti); len(missing) > 0 {
			granted := slices.Clone(ti.Scopes)
			want := missing
			for _, g := range granted {
				if !slices.Contains(want, g) {
					want = append(want, g)
				}
			}
			s.insufficientScope(w, r, want)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const (
	// maxJSONDepth bounds the nesting of a JSON-RPC body: far deeper
	// than any tool's arguments, far shallower than what costs memory to
	// decode.
	maxJSONDepth = 1000
	// maxBatch bounds a JSON-RPC batch (protocol versions before
	// 2025-06-18 have them): real clients send a handful.
	maxBatch = 100
)

// scanJSON reports whether the arrays and objects of the JSON text b nest
// deeper than maxDepth and, when b is an array, how many elements it has
// at the top (0 otherwise). It scans without recursion, and without caring
// whether b is otherwise valid: the decoder judges that.
func scanJSON(b []byte, maxDepth int) (tooDeep bool, batch int) {
	depth, inString, escaped, array := 0, false, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth == 0 && c == '[' {
				array, batch = true, 1
			}
			if depth++; depth > maxDepth {
				return true, batch
			}
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 1 && array:
			batch++
		}
	}
	return false, batch
}

// writeParseError answers a body that cannot be JSON-RPC with 400 and the
// JSON-RPC parse error (code -32700).
func writeParseError(w http.ResponseWriter, msg string) {
	writeRPCError(w, -32700, "Parse error: "+msg)
}

// writeRPCError answers 400 with a JSON-RPC error that has no id.
func writeRPCError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg}})
	w.Write(b)
}

// missingScopes returns the scopes that the calls in body need and ti
// lacks, in the order first needed.
func (s *Server) missingScopes(body []byte, ti *auth.TokenInfo) []string {
	var calls []rpcCall
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if decodeLikeSDK(trimmed, &calls) != nil {
			return nil
		}
	} else {
		var c rpcCall
		if decodeLikeSDK(trimmed, &c) != nil {
			return nil
		}
		calls = []rpcCall{c}
	}
	var missing []string
	for _, c := range calls {
		for _, sc := range s.scopesFor(c) {
			if !slices.Contains(ti.Scopes, sc) && !slices.Contains(missing, sc) {
				missing = append(missing, sc)
			}
		}
	}
	return missing
}

// decodeLikeSDK decodes JSON the way the go-sdk decodes JSON-RPC messages:
// with segmentio/encoding and case-sensitive field names. encoding/json
// matches names case-insensitively, so {"name":"note_save","NAME":"whoami"}
// would read as whoami here while the SDK runs note_save.
//
// It parses the first JSON value of data in place, as a Decoder would
// (trailing bytes are ignored), without the 32 KiB read buffer every
// segmentio Decoder allocates: that buffer was 7 % of the bytes allocated
// per tools/call (docs/benchmarks.md).
func decodeLikeSDK(data []byte, v any) error {
	_, err := json.Parse(data, v, json.DontMatchCaseInsensitiveStructFields)
	return err
}

// scopesFor returns the scopes one JSON-RPC call needs. Unknown tools and
// prompts need none here: the SDK answers them with an error.
func (s *Server) scopesFor(c rpcCall) []string {
	switch c.Method {
	case "tools/call":
		if t, ok := s.tools[c.Params.Name]; ok && t.scope != "" {
			return []string{t.scope}
		}
	case "resources/read":
		return []string{resourceScope}
	case "prompts/get":
		if c.Params.Name == promptSummarizeNotes {
			return []string{promptScope}
		}
	}
	return nil
}
