package mcp

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/segmentio/encoding/json"
)

const (
	// maxJSONDepth bounds the nesting of a JSON-RPC body: far deeper
	// than any tool's arguments, far shallower than what costs memory to
	// decode.
	maxJSONDepth = 1000
	// maxBatch bounds a JSON-RPC batch (protocol versions before
	// 2025-06-18 have them): real clients send a handful.
	maxBatch = 100
)

// refuseBody answers, and reports true for, a POST body that must not
// reach a decoder: one that is not UTF-8, nests deeper than maxJSONDepth,
// or batches more than maxBatch messages.
func refuseBody(w http.ResponseWriter, body []byte) bool {
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259 §8.1). The SDK would quote the bad
		// bytes back in its error, making the answer invalid too.
		writeParseError(w, "the body is not valid UTF-8")
		return true
	}
	switch tooDeep, batch := scanJSON(body, maxJSONDepth); {
	case tooDeep:
		// readInbound's decoder recurses once per level: 400,000 levels
		// in a 1 MB body took 128 MB of goroutine stack.
		writeParseError(w, fmt.Sprintf("the body nests deeper than %d levels", maxJSONDepth))
		return true
	case batch > maxBatch:
		// The SDK decodes a whole batch before it refuses one for the
		// protocol version: 0.6 s of CPU for 8,000 calls in 900 KB.
		writeRPCError(w, -32600, fmt.Sprintf("Invalid Request: a batch of more than %d messages", maxBatch))
		return true
	}
	return false
}

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
