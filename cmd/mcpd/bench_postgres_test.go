package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// BenchmarkPostgres is the refresh rotation and tools/call whoami of the
// benchmarks above on a server whose database is PostgreSQL
// (MCPD_TEST_DATABASE; skipped without it), stateless as replicas run:
//
//	go test -run '^$' -bench Postgres ./cmd/mcpd/
func BenchmarkPostgres(b *testing.B) {
	b.Run("refresh", func(b *testing.B) {
		benchRefreshLoop(b, benchServer(b, "--database", pgtest.URL(b), "--mcp-stateless", "true"))
	})
	b.Run("whoami", func(b *testing.B) {
		issuer := benchServer(b, "--database", pgtest.URL(b), "--mcp-stateless", "true", "--mcp-json-response", "true")
		hc := &http.Client{}
		id, secret := benchConfidential(b, hc, issuer)
		var tok benchTokens
		benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials&scope=notes%3Aread"), [2]string{id, secret}, http.StatusOK, &tok)
		client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
			Endpoint: issuer + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{token: tok.AccessToken}},
			DisableStandaloneSSE: true,
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cs.Close() })
		params := &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}
		for b.Loop() {
			if res, err := cs.CallTool(context.Background(), params); err != nil || res.IsError {
				b.Fatalf("whoami: %v %+v", err, res)
			}
		}
	})
}
