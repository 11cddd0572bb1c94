package mcp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDirectPath sends the same body, with the headers of a 2026-07-28
// client and the fuzzed Mcp-Method and Mcp-Name, to a server with the
// direct path and to one without, and requires the same answer whenever
// the direct path takes the request. Both servers get every request, in
// the same order, so that their notes stay alike.
func FuzzDirectPath(f *testing.F) {
	for _, tc := range directCases {
		body, h := tc.call.build(f, "alice-all")
		f.Add([]byte(body), h.Get("Mcp-Method"), h.Get("Mcp-Name"))
	}
	fixed := func() time.Time { return time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC) }
	newHandler := func(ext *Extension) (http.Handler, *Server) {
		notes := newMemNotes()
		notes.now = fixed
		srv, err := New(Config{Issuer: "http://127.0.0.1:8080", Verifier: fakeVerifier, Notes: notes, Extension: ext})
		if err != nil {
			f.Fatal(err)
		}
		return srv.Handler(), srv
	}
	direct, srv := newHandler(nil)
	viaSDK, _ := newHandler(&Extension{})
	serve := func(h http.Handler, body []byte, method, name string) answer {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080"+Path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer alice-all")
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Mcp-Protocol-Version", v2026)
		r.Header.Set("Mcp-Method", method)
		if name != "" {
			r.Header.Set("Mcp-Name", name)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return answer{w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"), w.Body.String()}
	}
	calls := func() (n int64) {
		for i := range srv.shared.slots {
			if c := srv.shared.slots[i].Load(); c != nil {
				n += c.nextID.Load()
			}
		}
		return n
	}
	f.Fuzz(func(t *testing.T, body []byte, method, name string) {
		before := calls()
		got := serve(direct, body, method, name)
		want := serve(viaSDK, body, method, name)
		if calls() == before {
			return // the stateless handler answered it, as before
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("body %q, Mcp-Method %q, Mcp-Name %q: direct path answer (-go-sdk +direct):\n%s", body, method, name, diff)
		}
	})
}
