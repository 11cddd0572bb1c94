package mcp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op, the process's CPU time per iteration since
// start: on a shared machine it holds steadier than ns/op, which counts
// the time other processes had the cores.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

// whoamiEra is tools/call whoami as a client of one protocol era sends
// it: open returns the headers of every call (after opening a session,
// where the era has them), body is the call.
type whoamiEra struct {
	name string
	open func(b *testing.B) map[string]string
	body string
}

// whoamiEras are whoami in a 2025-era session and as a 2026-07-28
// stateless request (with its _meta and Mcp-Method/Mcp-Name headers);
// post sends a body with headers and returns the answer's headers.
func whoamiEras(post func(b *testing.B, body string, hdr map[string]string) http.Header) []whoamiEra {
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}`
	return []whoamiEra{
		{"2025-session", func(b *testing.B) map[string]string {
			hdr := map[string]string{"Mcp-Session-Id": post(b, initializeBody, nil).Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-06-18"}
			post(b, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr)
			return hdr
		}, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`},
		{"2026-07-28", func(*testing.B) map[string]string {
			return map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "whoami"}
		}, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{},` + meta + `}}`},
	}
}

// BenchmarkHandlerEra measures the server side alone: tools/call whoami
// handed straight to the authenticated /mcp handler (no network, no
// client), as a request of a 2025-era session and as a 2026-07-28
// stateless request, as the load generator sends them. Its -cpuprofile
// and -memprofile show where the server's time and bytes go per era;
// cpu-ns/op counts the garbage collector's work too.
func BenchmarkHandlerEra(b *testing.B) {
	srv, err := New(Config{Issuer: "http://127.0.0.1:8080", Verifier: fakeVerifier, Notes: newMemNotes()})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	serve := func(b *testing.B, body string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080"+Path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer alice-all")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		return rec
	}
	for _, bc := range whoamiEras(func(b *testing.B, body string, hdr map[string]string) http.Header {
		return serve(b, body, hdr).Header()
	}) {
		b.Run(bc.name, func(b *testing.B) {
			hdr := bc.open(b)
			start := processCPU(b)
			for b.Loop() {
				rec := serve(b, bc.body, hdr)
				if data := rec.Body.Bytes(); !bytes.Contains(data, []byte(`"result"`)) || bytes.Contains(data, []byte(`"isError":true`)) {
					b.Fatalf("whoami: %s", data)
				}
			}
			reportCPU(b, start)
		})
	}
}
