package mcp

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/segmentio/encoding/json"
)

// The direct path serves the common 2026-07-28 request (one call, asking
// for no notifications, well formed) on a long-lived ServerSession of the
// same sdk.Server (sharedSessions), instead of the go-sdk's stateless
// handler, which builds, connects and closes a session for every request
// and decodes its body five times over on the way (docs/protocol.md, "The
// direct path"; docs/benchmarks.md has the profile).
//
// Everything the session does is the go-sdk's: the _meta checks, the
// version check, the method's handler, resultType and serverInfo, caching
// hints. What the stateless handler's transport does before it, the direct
// path does not redo: it takes only requests that pass every one of those
// checks, and leaves every other request to the stateless handler, which
// answers it as before. directCall lists what it asks for; each item is a
// check the transport makes, and the differential test
// (TestDirectPathAnswersAsTheSDK) sends the same requests both ways.

// directSessions is how many shared sessions the direct path uses. A
// session takes its calls one after the other up to the point where their
// handlers may run concurrently (the go-sdk's _meta checks, a small part
// of a call); a few sessions keep that step from becoming a queue when
// many calls arrive at once. Each costs one idle goroutine (its reader).
const directSessions = 4

// maxDirectDepth is how deep a body's arrays and objects may nest for the
// direct path: the go-sdk refuses to decode anything deeper than 1000.
const maxDirectDepth = 1000

// wireMessage is a JSON-RPC message as the go-sdk decodes one (its
// jsonrpc2 wire form: the same field names and types), so that a body that
// decodes here decodes there.
type wireMessage struct {
	Version string          `json:"jsonrpc"`
	ID      any             `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *jsonrpc.Error  `json:"error"`
}

// directCall reads body as a request the direct path may serve, with r's
// headers. ok is false unless the go-sdk's stateless transport would pass
// the request on to its session unchanged:
//
//   - the Mcp-Protocol-Version header is 2026-07-28, and so is the
//     protocol version in the call's _meta;
//   - no Last-Event-ID header; Content-Type application/json; Accept
//     naming application/json and text/event-stream;
//   - the Authorization header has two fields and the token has not
//     expired by the wall clock (auth.RequireBearerToken's checks, which
//     the stateless handler sits behind);
//   - the body is one JSON-RPC 2.0 call, valid JSON nested no deeper than
//     maxDirectDepth, of a method directMethod serves, with params an
//     object;
//   - Mcp-Method is the method; for tools/call, prompts/get and
//     resources/read, the params decode as the go-sdk's params of that
//     method and Mcp-Name is the tool or prompt name or the resource URI;
//   - a tools/call names one of mcpd's own tools, whose input schemas bind
//     no Mcp-Param-* header (x-mcp-header).
//
// Whether the call asks for notifications the dispatcher has read
// (inbound.quiet).
func (s *Server) directCall(r *http.Request, body []byte) (*jsonrpc.Request, jsonrpc.ID, bool) {
	var none jsonrpc.ID
	h := r.Header
	if h.Get(protocolVersionHeader) != firstStatelessVersion || len(h.Values("Last-Event-ID")) > 0 ||
		!isJSONContentType(h.Get("Content-Type")) || !acceptsJSONAndEventStream(h.Values("Accept")) {
		return nil, none, false
	}
	ti, err := verifiedTokenInfo(r.Context())
	if err != nil || len(strings.Fields(h.Get("Authorization"))) != 2 ||
		(!ti.Expiration.IsZero() && ti.Expiration.Before(time.Now())) {
		return nil, none, false
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) || tooDeepForDirect(trimmed) {
		return nil, none, false
	}
	var msg wireMessage
	if decodeLikeSDK(trimmed, &msg) != nil || msg.Version != "2.0" || !directMethod(msg.Method) ||
		len(msg.Params) == 0 || msg.Params[0] != '{' || h.Get("Mcp-Method") != msg.Method {
		return nil, none, false
	}
	id, err := jsonrpc.MakeID(msg.ID)
	if err != nil || !id.IsValid() {
		return nil, none, false
	}
	p, ok := readDirectParams(msg.Method, msg.Params)
	if !ok || p.version != firstStatelessVersion ||
		(p.named && (h.Get("Mcp-Name") == "" || h.Get("Mcp-Name") != p.name)) {
		return nil, none, false
	}
	if msg.Method == "tools/call" {
		if _, own := s.tools[p.name]; !own {
			return nil, none, false
		}
	}
	return &jsonrpc.Request{
		Method: msg.Method,
		Params: msg.Params,
		Extra: &sdk.RequestExtra{
			TokenInfo: ti,
			Header:    h,
			// A 2026-07-28 request has no stream to close; the go-sdk
			// gives its handlers a function that does nothing.
			CloseSSEStream: func(sdk.CloseSSEStreamArgs) {},
		},
	}, id, true
}

// directMethod reports whether the direct path serves method. Not on it:
// server/discover (it records the caller in its session), anything the
// 2026-07-28 revision removed or answers on a stream, and anything mcpd
// does not offer.
func directMethod(method string) bool {
	switch method {
	case "tools/call", "tools/list", "resources/read", "resources/list", "resources/templates/list", "prompts/get", "prompts/list":
		return true
	}
	return false
}

// directParams is what directCall reads of a call's params, as the
// go-sdk's transport reads them.
type directParams struct {
	// version is the protocol version in the params' _meta.
	version string
	// named reports a method that has a name (tools/call, prompts/get,
	// resources/read), and name is the tool's or prompt's name or the
	// resource's URI, compared with Mcp-Name.
	named bool
	name  string
}

// readDirectParams decodes the params of a call of method as the go-sdk's
// transport does: into the method's own params type for a method that has
// a name (ok is false when they do not decode, which the transport
// answers with -32020), and, for the others, only the _meta it reads the
// protocol version from. Either way the version is read from _meta as a
// string, as the transport reads it.
//
// _meta itself is kept raw (the field shadows the params type's own):
// decoding it into the go-sdk's map took a third of directCall's time, and
// the transport needs of it only that it is an object or null (any valid
// JSON object decodes into that map) and the version it names. Of a
// repeated _meta the last counts here, where the go-sdk merges them: the
// version read here is then also the go-sdk's, or there is none.
func readDirectParams(method string, params json.RawMessage) (p directParams, ok bool) {
	var meta json.RawMessage
	switch method {
	case "tools/call":
		var v struct {
			sdk.CallToolParams
			Meta json.RawMessage `json:"_meta"`
		}
		ok = decodeLikeSDK(params, &v) == nil
		p.named, p.name, meta = true, v.Name, v.Meta
	case "prompts/get":
		var v struct {
			sdk.GetPromptParams
			Meta json.RawMessage `json:"_meta"`
		}
		ok = decodeLikeSDK(params, &v) == nil
		p.named, p.name, meta = true, v.Name, v.Meta
	case "resources/read":
		var v struct {
			sdk.ReadResourceParams
			Meta json.RawMessage `json:"_meta"`
		}
		ok = decodeLikeSDK(params, &v) == nil
		p.named, p.name, meta = true, v.URI, v.Meta
	default:
		var v struct {
			Meta json.RawMessage `json:"_meta"`
		}
		ok = decodeLikeSDK(params, &v) == nil
		meta = v.Meta
	}
	switch {
	case len(meta) == 0 || string(meta) == "null":
	case meta[0] != '{':
		ok = false // the go-sdk's map refuses it
	default:
		var m struct {
			Version any `json:"io.modelcontextprotocol/protocolVersion"`
		}
		if decodeLikeSDK(meta, &m) != nil {
			return p, false
		}
		p.version, _ = m.Version.(string)
	}
	return p, ok
}

// serveDirect answers a request that directCall accepted from a shared
// session, as the go-sdk's stateless transport answers it in JSON: the
// response alone, as application/json, with HTTP 404 or 400 for the errors
// SEP-2575 gives those statuses.
func (s *Server) serveDirect(w http.ResponseWriter, r *http.Request, call *jsonrpc.Request, id jsonrpc.ID) {
	resp, err := s.shared.call(call)
	if err != nil {
		s.log.ErrorContext(r.Context(), "serving a 2026-07-28 request on a shared session", "err", err)
		http.Error(w, "failed connection", http.StatusInternalServerError)
		return
	}
	resp.ID = id
	data, err := jsonrpc.EncodeMessage(resp)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encoding a 2026-07-28 response", "err", err)
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	w.Header().Set("Content-Type", "application/json")
	if status := modernErrorStatus(resp.Error); status != 0 {
		w.WriteHeader(status)
	}
	w.Write(data)
}

// modernErrorStatus is the HTTP status of a 2026-07-28 response carrying
// err (SEP-2575): 404 for method not found; 400 for invalid params, an
// unsupported protocol version and missing client capabilities; 0 (200)
// for any other error or none.
func modernErrorStatus(err error) int {
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		return 0
	}
	switch werr.Code {
	case jsonrpc.CodeMethodNotFound:
		return http.StatusNotFound
	case jsonrpc.CodeInvalidParams, sdk.CodeUnsupportedProtocolVersion, sdk.CodeMissingRequiredClientCapabilities:
		return http.StatusBadRequest
	}
	return 0
}

// isJSONContentType reports whether a Content-Type is application/json,
// as the go-sdk's transport reads it (the media type, parameters aside).
func isJSONContentType(v string) bool {
	if v == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "application/json"
}

// acceptsJSONAndEventStream reports whether Accept values name both
// application/json and text/event-stream (parameters aside), which the
// go-sdk's transport requires of a POST. Wildcards make it answer false:
// the stateless handler then judges the request.
func acceptsJSONAndEventStream(values []string) bool {
	var jsonOK, streamOK bool
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(item, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/json":
				jsonOK = true
			case "text/event-stream":
				streamOK = true
			}
		}
	}
	return jsonOK && streamOK
}

// tooDeepForDirect reports whether b nests deeper than the go-sdk
// decodes. readInbound refuses bodies deeper than maxJSONDepth already;
// the direct path checks its own bound, so that it holds whatever that
// limit becomes.
func tooDeepForDirect(b []byte) bool {
	deep, _ := scanJSON(b, maxDirectDepth)
	return deep
}

// directHandler serves what directCall accepts on the direct path and
// hands everything else to fallback.
func (s *Server) directHandler(fallback http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call, id, ok := s.directCall(r, inboundFrom(r.Context()).body)
		if !ok {
			fallback.ServeHTTP(w, r)
			return
		}
		s.serveDirect(w, r, call, id)
	})
}

// modernSessionState is the state a shared session starts in: initialized
// at 2026-07-28, so that the go-sdk treats it as a session of that
// revision (no server-to-client requests; tools, prompts and resources
// that ask for input answer input_required) and never records any one
// caller's _meta in it. Handlers read the caller's client info and
// capabilities from the request (ServerRequest.ClientInfo,
// ClientCapabilities), never from the session.
func modernSessionState() *sdk.ServerSessionState {
	return &sdk.ServerSessionState{InitializeParams: &sdk.InitializeParams{
		ProtocolVersion: firstStatelessVersion,
		Capabilities:    &sdk.ClientCapabilities{},
	}}
}
