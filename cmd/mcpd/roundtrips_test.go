package main

import (
	"net/http"
	"testing"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// TestPostgresRoundTrips counts the round trips to PostgreSQL of the
// token endpoint's busiest requests, through a proxy that counts them
// (pgtest.Proxy.Flights): a stable measure of their cost on a loaded
// machine, where timings are not (docs/benchmarks.md). Each request runs
// a few times first, so the statements are prepared.
func TestPostgresRoundTrips(t *testing.T) {
	proxy, db := pgtest.NewProxy(t, pgtest.URL(t))
	ts := startServer(t, "--database", db, "--mcp-stateless", "true")
	clientID, redirect := publicClient(t, ts.URL, "round trips")
	tok := login(t, ts.URL, clientID, redirect, "admin", "admin-pw", "notes:read")
	reg := registerClient(t, ts.URL, map[string]any{
		"client_name": "round trips cc", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read",
	})
	ccID, ccSecret := reg["client_id"].(string), reg["client_secret"].(string)

	rt := tok.RefreshToken
	for _, c := range []struct {
		name string
		max  float64
		do   func(t *testing.T)
	}{
		{"refresh rotation", 7, func(t *testing.T) {
			st, out := refreshAt(t, ts.URL, clientID, rt)
			if st != http.StatusOK {
				t.Fatalf("refresh: %d %v", st, out)
			}
			rt = out["refresh_token"].(string)
		}},
		{"client_credentials", 2, func(t *testing.T) {
			if st, out, _ := tokenAnswer(t, ts.URL, ccID, ccSecret); st != http.StatusOK {
				t.Fatalf("client_credentials: %d %v", st, out)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 3 {
				c.do(t)
			}
			const n = 20
			before := proxy.Flights()
			for range n {
				c.do(t)
			}
			got := float64(proxy.Flights()-before) / n
			t.Logf("%s: %.2f round trips to PostgreSQL", c.name, got)
			if got > c.max {
				t.Errorf("%s: %.2f round trips; want at most %v", c.name, got, c.max)
			}
		})
	}
}
