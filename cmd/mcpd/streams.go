package main

import (
	"context"
	"net/http"
)

// eventStreams ends long-lived GET event streams when the server shuts
// down. http.Server.Shutdown waits for every active request, and an MCP
// client's standalone GET stream never ends on its own, so without this a
// connected client would hold shutdown until its timeout. POSTs are left to
// finish.
type eventStreams struct {
	ctx  context.Context
	stop context.CancelFunc
}

func newEventStreams() *eventStreams {
	ctx, stop := context.WithCancel(context.Background())
	return &eventStreams{ctx: ctx, stop: stop}
}

// middleware ties the context of every GET request to the server's
// lifetime as well as to the client's connection.
func (e *eventStreams) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(e.ctx, cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
