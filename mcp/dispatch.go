package mcp

import (
	"net/http"
)

// Why a dispatcher: the go-sdk (v1.8.0) serves the 2026-07-28 protocol
// (server/discover, per-request _meta, no session) only from a
// StreamableHTTPHandler in Stateless mode, and that handler gives 2025-era
// clients no session (each of their requests runs in a throw-away one).
// Its stateful handler keeps sessions but answers every 2026-07-28 request
// with -32022. So /mcp holds one handler of each kind over the same
// sdk.Server, tools and checks, and dispatch sends each request to the one
// of its protocol era. docs/protocol.md has the table.

// eraHandlers are the go-sdk handlers dispatch chooses from, all over the
// same sdk.Server.
type eraHandlers struct {
	// sessions serves 2025-era requests with sessions; nil with
	// Config.Stateless, and then stateless serves them too.
	sessions http.Handler
	// stateless serves 2026-07-28 requests, answering with an event
	// stream (or JSON with Config.JSONResponse).
	stateless http.Handler
	// statelessJSON serves 2026-07-28 requests that asked for neither
	// progress nor log messages (inbound.quiet): their response holds the
	// result alone, so it is sent as application/json, which costs less
	// than an event stream.
	statelessJSON http.Handler
	// direct, if set, serves the quiet 2026-07-28 requests it can on a
	// shared session (see directCall) and hands the others to
	// statelessJSON.
	direct http.Handler
}

// dispatch routes a request that passed every check to the go-sdk handler
// of its era: a stateless one for a 2026-07-28 request (see
// inbound.stateless), the session one for every other. A quiet
// 2026-07-28 POST goes to the direct path first, which serves it on a
// shared session when it can (directCall) and otherwise hands it to
// statelessJSON.
func dispatch(h eraHandlers) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := inboundFrom(r.Context())
		switch {
		case in.stateless && in.quiet && r.Method == http.MethodPost:
			if h.direct != nil {
				h.direct.ServeHTTP(w, r)
				return
			}
			h.statelessJSON.ServeHTTP(w, r)
		case in.stateless || h.sessions == nil:
			h.stateless.ServeHTTP(w, r)
		default:
			h.sessions.ServeHTTP(w, r)
		}
	})
}
