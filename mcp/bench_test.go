package mcp

import (
	"context"
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
// stream (Config.JSONResponse). The -dpop variant presents a DPoP-bound
// token with a proof that a checker accepting it at once vouches for: the
// MCP side of DPoP (scheme, URLs, binding, the request handed on) without
// the proof's cryptography, which dpop.BenchmarkCheck measures.
func BenchmarkWhoami(b *testing.B) {
	for _, bc := range []struct {
		name         string
		authenticate bool
		jsonResponse bool
		dpop         bool
	}{
		{"authenticated", true, false, false},
		{"authenticated-dpop", true, false, true},
		{"auth-off", false, false, false},
		{"authenticated-json", true, true, false},
		{"auth-off-json", false, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := httptest.NewUnstartedServer(nil)
			cfg := Config{Issuer: "http://" + ts.Listener.Addr().String(), Verifier: fakeVerifier, Notes: newMemNotes(), JSONResponse: bc.jsonResponse}
			var rt http.RoundTripper = bearerTransport{token: "alice-all"}
			if bc.dpop {
				cfg.DPoP = acceptingProofs{jkt: "jkt-1"}
				rt = dpopBenchTransport{token: "alice-bound"}
			}
			srv, err := newServer(cfg, bc.authenticate)
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
					HTTPClient:           &http.Client{Transport: rt},
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

// acceptingProofs is a ProofChecker that takes every proof for one of jkt.
type acceptingProofs struct{ jkt string }

func (a acceptingProofs) CheckProof(context.Context, []string, string, []string, string) (string, error) {
	return a.jkt, nil
}
func (acceptingProofs) Algorithms() []string { return []string{"ES256"} }
func (acceptingProofs) Nonce() string        { return "" }

// dpopBenchTransport presents token with the DPoP scheme and a proof.
type dpopBenchTransport struct{ token string }

func (d dpopBenchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+d.token)
	r.Header.Set("DPoP", "proof")
	return http.DefaultTransport.RoundTrip(r)
}
