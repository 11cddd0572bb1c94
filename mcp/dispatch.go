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

// dispatch routes a request that passed every check to the go-sdk handler
// of its era: stateless for a 2026-07-28 request (see inbound.stateless),
// sessions for every other. With sessions nil (Config.Stateless) every
// request goes to stateless.
func dispatch(sessions, stateless http.Handler) http.Handler {
	if sessions == nil {
		return stateless
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inboundFrom(r.Context()).stateless {
			stateless.ServeHTTP(w, r)
			return
		}
		sessions.ServeHTTP(w, r)
	})
}
