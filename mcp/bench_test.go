package mcp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkWhoami measures tools/call whoami through the real go-sdk client
// (held to a 2025-11-25 session; BenchmarkWhoamiEra compares the eras)
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
				}, &sdk.ClientSessionOptions{ProtocolVersion: v2025})
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

// BenchmarkWhoamiEra measures tools/call whoami through the authenticated
// /mcp handler as the load generator sends it (raw JSON-RPC over HTTP, no
// SDK client): as a request of a 2025-era session and as a 2026-07-28
// stateless request with its _meta and Mcp-Method/Mcp-Name headers.
// cpu-ns/op is the process's CPU time per call, client included.
func BenchmarkWhoamiEra(b *testing.B) {
	ts := httptest.NewUnstartedServer(nil)
	srv, err := New(Config{Issuer: "http://" + ts.Listener.Addr().String(), Verifier: fakeVerifier, Notes: newMemNotes()})
	if err != nil {
		b.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	b.Cleanup(ts.Close)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(b *testing.B, body string, h map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer alice-all")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode/100 != 2 {
			b.Fatalf("status %d: %s", resp.StatusCode, data)
		}
		return resp, data
	}
	for _, bc := range whoamiEras(func(b *testing.B, body string, h map[string]string) http.Header {
		resp, _ := post(b, body, h)
		return resp.Header
	}) {
		b.Run(bc.name, func(b *testing.B) {
			start := processCPU(b)
			defer func() { reportCPU(b, start) }()
			b.RunParallel(func(pb *testing.PB) {
				h := bc.open(b)
				for pb.Next() {
					if _, data := post(b, bc.body, h); !bytes.Contains(data, []byte(`"result"`)) || bytes.Contains(data, []byte(`"isError":true`)) {
						b.Errorf("whoami: %s", data)
						return
					}
				}
			})
		})
	}
}
