package mcp

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkWhoami measures tools/call whoami through the real go-sdk client
// against the /mcp handler with the bearer middleware and scope check, and
// against the same handler with authentication switched off. ns/op is the
// latency of one call; the parallel variants show throughput over several
// sessions; the -json variants answer application/json instead of an SSE
// stream (Config.JSONResponse).
func BenchmarkWhoami(b *testing.B) {
	for _, bc := range []struct {
		name         string
		authenticate bool
		jsonResponse bool
	}{
		{"authenticated", true, false},
		{"auth-off", false, false},
		{"authenticated-json", true, true},
		{"auth-off-json", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := httptest.NewUnstartedServer(nil)
			srv, err := newServer(Config{Issuer: "http://" + ts.Listener.Addr().String(), Verifier: fakeVerifier, Notes: newMemNotes(), JSONResponse: bc.jsonResponse}, bc.authenticate)
			if err != nil {
				b.Fatal(err)
			}
			ts.Config.Handler = srv.Handler()
			ts.Start()
			b.Cleanup(ts.Close)
			connect := func() *sdk.ClientSession {
				client := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1.0.0"}, nil)
				cs, err := client.Connect(b.Context(), &sdk.StreamableClientTransport{
					Endpoint:             ts.URL,
					HTTPClient:           &http.Client{Transport: bearerTransport{token: "alice-all"}},
					DisableStandaloneSSE: true,
				}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cs.Close() })
				return cs
			}
			params := &sdk.CallToolParams{Name: "whoami", Arguments: map[string]any{}}

			b.Run("serial", func(b *testing.B) {
				cs := connect()
				for b.Loop() {
					res, err := cs.CallTool(b.Context(), params)
					if err != nil || res.IsError {
						b.Fatalf("whoami: %v %+v", err, res)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				sessions := make(chan *sdk.ClientSession, 64)
				for range cap(sessions) {
					sessions <- connect()
				}
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					cs := <-sessions
					defer func() { sessions <- cs }()
					for pb.Next() {
						res, err := cs.CallTool(b.Context(), params)
						if err != nil || res.IsError {
							b.Errorf("whoami: %v %+v", err, res)
							return
						}
					}
				})
			})
		})
	}
}
