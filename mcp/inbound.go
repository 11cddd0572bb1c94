package mcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/segmentio/encoding/json"
)

// Header and _meta names of the 2026-07-28 protocol that mcpd reads before
// the go-sdk does.
const (
	protocolVersionHeader = "Mcp-Protocol-Version"
	metaProtocolVersion   = "io.modelcontextprotocol/protocolVersion"
)

// firstStatelessVersion is the first protocol version without initialize
// and sessions: a request at this version or later carries its version and
// client capabilities in every request's _meta (SEP-2575). Versions are
// compared as strings, as the go-sdk compares them.
const firstStatelessVersion = "2026-07-28"

// inbound is what mcpd reads of a POST body before the go-sdk does: the
// calls, for the scope check, and the protocol era and whether the answer
// may be plain JSON, for the dispatcher.
type inbound struct {
	// body is the POST body, as read.
	body  []byte
	calls []rpcCall
	// stateless reports a request of the 2026-07-28 era: its
	// Mcp-Protocol-Version header or the _meta of one of its calls names
	// that version or a later one.
	stateless bool
	// quiet reports that no call asked, in its _meta, for progress (a
	// progressToken) or for log messages (a log level). A 2026-07-28
	// request that asks for neither gets nothing on its response but the
	// result: no server-to-client requests exist in that revision, and
	// list-change and resource notifications travel on subscriptions/listen.
	quiet bool
}

type inboundKey struct{}

// inboundFrom returns what readInbound read; a request that did not pass
// it reads as an empty, session-era request.
func inboundFrom(ctx context.Context) *inbound {
	if in, ok := ctx.Value(inboundKey{}).(*inbound); ok {
		return in
	}
	return &inbound{}
}

// rpcCall is the part of a JSON-RPC message that the scope check reads.
type rpcCall struct {
	Method string `json:"method"`
	Params struct {
		Name string `json:"name"` // tools/call, prompts/get
		URI  string `json:"uri"`  // resources/read
		// Meta is only looked at here (readMeta decodes _meta apart), so
		// that a _meta of any shape never makes the call unreadable to
		// the scope check.
		Meta json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// metaView is the part of a JSON-RPC message's _meta the dispatcher
// reads. It is decoded apart from rpcCall and, like the go-sdk's reading,
// merges repeated _meta objects.
type metaView struct {
	Params struct {
		Meta struct {
			Version       string          `json:"io.modelcontextprotocol/protocolVersion"`
			ProgressToken json.RawMessage `json:"progressToken"`
			LogLevel      json.RawMessage `json:"io.modelcontextprotocol/logLevel"`
		} `json:"_meta"`
	} `json:"params"`
}

// readMeta reads the _meta of the calls in body (a message or a batch):
// whether one names a 2026-07-28-era version, and whether none asks for
// progress or log messages. A body it cannot read names no version and is
// not quiet.
func readMeta(body []byte) (stateless, quiet bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var views []metaView
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if decodeLikeSDK(trimmed, &views) != nil {
			return false, false
		}
	} else {
		var v metaView
		if decodeLikeSDK(trimmed, &v) != nil {
			return false, false
		}
		views = []metaView{v}
	}
	quiet = true
	for _, v := range views {
		m := v.Params.Meta
		if statelessVersion(m.Version) {
			stateless = true
		}
		if len(m.ProgressToken) > 0 || len(m.LogLevel) > 0 {
			quiet = false
		}
	}
	return stateless, quiet
}

// statelessVersion reports whether a protocol version belongs to the
// 2026-07-28 era. An unknown later version does too: the go-sdk's
// stateless handler answers it with -32022 and the versions it supports.
func statelessVersion(v string) bool { return v != "" && v >= firstStatelessVersion }

// readInbound reads a POST body (bounded by MaxBodyBytes), restores it for
// the go-sdk and puts what it read in the request's context. Any method's
// Mcp-Protocol-Version header counts for the era: a 2026-07-28 GET or
// DELETE goes to the stateless handler, which answers 405.
func (s *Server) readInbound(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := &inbound{stateless: statelessVersion(r.Header.Get(protocolVersionHeader))}
		if r.Method == http.MethodPost && r.Body != nil {
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
			if refuseBody(w, body) {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			in.body = body
			in.calls, in.stateless, in.quiet = decodeBody(body, in.stateless)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), inboundKey{}, in)))
	})
}

// decodeBody reads the calls of a body and what their _meta says (see
// inbound); headerStateless is what the Mcp-Protocol-Version header said.
// Calls without _meta need no second reading, so most 2025-era bodies are
// parsed once.
func decodeBody(body []byte, headerStateless bool) (calls []rpcCall, stateless, quiet bool) {
	calls = decodeCalls(body)
	if calls != nil && !slices.ContainsFunc(calls, func(c rpcCall) bool { return len(c.Params.Meta) > 0 }) {
		return calls, headerStateless, true
	}
	metaStateless, quiet := readMeta(body)
	return calls, headerStateless || metaStateless, quiet
}

// decodeCalls reads a JSON-RPC message or batch; a body that is neither
// yields no calls (the go-sdk rejects it).
func decodeCalls(body []byte) []rpcCall {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var calls []rpcCall
		if decodeLikeSDK(trimmed, &calls) != nil {
			return nil
		}
		return calls
	}
	var c rpcCall
	if decodeLikeSDK(trimmed, &c) != nil {
		return nil
	}
	return []rpcCall{c}
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
