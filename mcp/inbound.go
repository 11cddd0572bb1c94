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
// calls, for the scope check, and the protocol era, for the dispatcher.
type inbound struct {
	calls []rpcCall
	// stateless reports a request of the 2026-07-28 era: its
	// Mcp-Protocol-Version header or the _meta of one of its calls names
	// that version or a later one.
	stateless bool
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
		// Meta is only looked at (metaNamesStatelessVersion), so that a
		// _meta of any shape never makes the call unreadable to the scope
		// check.
		Meta json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// metaView is the part of a JSON-RPC message that names its protocol
// version in _meta. It is decoded apart from rpcCall and, like the
// go-sdk's reading, merges repeated _meta objects.
type metaView struct {
	Params struct {
		Meta struct {
			Version string `json:"io.modelcontextprotocol/protocolVersion"`
		} `json:"_meta"`
	} `json:"params"`
}

// metaNamesStatelessVersion reports whether the _meta of a call in body
// (a message or a batch) names a 2026-07-28-era version.
func metaNamesStatelessVersion(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var views []metaView
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if decodeLikeSDK(trimmed, &views) != nil {
			return false
		}
	} else {
		var v metaView
		if decodeLikeSDK(trimmed, &v) != nil {
			return false
		}
		views = []metaView{v}
	}
	for _, v := range views {
		if statelessVersion(v.Params.Meta.Version) {
			return true
		}
	}
	return false
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
			r.Body = io.NopCloser(bytes.NewReader(body))
			var stateless bool
			in.calls, stateless = decodeBody(body, !in.stateless)
			in.stateless = in.stateless || stateless
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), inboundKey{}, in)))
	})
}

// decodeBody reads the calls of a body and, with era set, whether their
// _meta names a 2026-07-28-era version. A call without _meta names none,
// so most 2025-era bodies are parsed once.
func decodeBody(body []byte, era bool) (calls []rpcCall, stateless bool) {
	calls = decodeCalls(body)
	if era && (calls == nil || slices.ContainsFunc(calls, func(c rpcCall) bool { return len(c.Params.Meta) > 0 })) {
		stateless = metaNamesStatelessVersion(body)
	}
	return calls, stateless
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
