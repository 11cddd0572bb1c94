// Package pgtest gives a test a fresh, empty PostgreSQL schema of its own
// on the server that the environment variable MCPD_TEST_DATABASE names
// (a postgres:// URL). scripts/pgcluster.sh starts such a server, a
// throw-away cluster on loopback, and prints the variable; .ci/run does so
// before the tests.
//
// Without MCPD_TEST_DATABASE a test that asks for a schema is skipped with
// a message saying how to run it, except under CI (CI set), where the
// PostgreSQL tests must run: there it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the variable that holds the test server's URL.
const EnvVar = "MCPD_TEST_DATABASE"

// URL returns the URL of a new, empty schema on the test server: the
// server's URL with search_path set to it. The schema is dropped, with
// everything in it, when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set under CI: .ci/run must start PostgreSQL (scripts/pgcluster.sh) so these tests run", EnvVar)
		}
		t.Skipf("%s is not set: run `eval \"$(bash scripts/pgcluster.sh start /tmp/mcpd-pg)\"` to run the PostgreSQL tests", EnvVar)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec(t, ctx, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec(t, ctx, base, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func exec(t testing.TB, ctx context.Context, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}
