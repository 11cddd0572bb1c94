// Package pgtest gives a test a fresh, empty PostgreSQL schema of its own
// on the server that the environment variable MCPD_TEST_DATABASE names
// (a postgres:// URL). scripts/pgcluster.sh starts such a server, a
// throw-away cluster on loopback, and prints the variable; .ci/run does so
// before the tests.
//
// Role, SetReadOnly, Terminate and Proxy let a test make its database
// read-only, end its sessions or cut it off, as a failover, a restart or a
// failing network would, without touching the other tests on the server.
//
// Without MCPD_TEST_DATABASE a test that asks for a schema is skipped with
// a message saying how to run it, except under CI (CI set), where the
// PostgreSQL tests must run: there it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
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

// Role returns the URL of the schema that dbURL (a URL from URL) names,
// reached as a login role of its own, created for the test and dropped,
// with what it owns, when the test ends; and the role's name. A test can
// change that role's settings (SetReadOnly) and end its sessions
// (Terminate) without touching the other tests on the server.
func Role(t testing.TB, dbURL string) (string, string) {
	t.Helper()
	base := os.Getenv(EnvVar)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	schema := u.Query().Get("search_path")
	b := make([]byte, 12)
	rand.Read(b)
	role, password := "role_"+hex.EncodeToString(b[:6]), hex.EncodeToString(b[6:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec(t, ctx, base, "CREATE ROLE "+role+" LOGIN PASSWORD '"+password+"'")
	exec(t, ctx, base, "GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		Terminate(t, role)
		exec(t, ctx, base, "DROP OWNED BY "+role+" CASCADE")
		exec(t, ctx, base, "DROP ROLE "+role)
	})
	u.User = url.UserPassword(role, password)
	return u.String(), role
}

// SetReadOnly makes every new session of role read-only, or writable
// again (default_transaction_read_only), and ends the sessions it has:
// what its clients see of a failover onto a hot standby, and of that
// standby's promotion.
func SetReadOnly(t testing.TB, role string, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sql := "ALTER ROLE " + role + " RESET default_transaction_read_only"
	if on {
		sql = "ALTER ROLE " + role + " SET default_transaction_read_only = on"
	}
	exec(t, ctx, os.Getenv(EnvVar), sql)
	Terminate(t, role)
}

// Terminate ends every session role has, as a server restart ends its
// clients' sessions (SQLSTATE 57P01), and waits until they are gone.
// Sessions the role opens afterwards live.
func Terminate(t testing.TB, role string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Getenv(EnvVar))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	defer conn.Close(ctx)
	// The sessions are picked first and ended by a second statement: in
	// one, the planner may call pg_terminate_backend before filtering.
	var pids []int32
	err = conn.QueryRow(ctx, "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE usename = $1", role).Scan(&pids)
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
	}
	if err != nil {
		t.Fatalf("pgtest: terminate the sessions of %s: %v", role, err)
	}
	for {
		var left int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
			t.Fatalf("pgtest: wait for the sessions of %s: %v", role, err)
		}
		if left == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Proxy is a TCP proxy in front of the test server. A test can take it
// Down, which cuts every connection through it and refuses new ones, and
// bring it Up again: what a database server that stops and starts again,
// or a network that fails and heals, looks like to its clients.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	flights atomic.Int64
}

// NewProxy starts a proxy to the server of dbURL (a URL from URL or Role)
// and returns it with dbURL's URL through it. It stops when the test ends.
func NewProxy(t testing.TB, dbURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Down()
		p.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(c)
		}()
	}
}

// pipe copies between a client and a connection of its own to the server
// until either side ends or Down cuts both.
func (p *Proxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		s.Close()
		p.drop(c)
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	// A flight is what the client sends between two answers of the
	// server: one round trip.
	var answered atomic.Bool
	answered.Store(true)
	done := make(chan struct{}, 2)
	go func() {
		copyCounting(s, c, func() {
			if answered.Swap(false) {
				p.flights.Add(1)
			}
		})
		done <- struct{}{}
	}()
	go func() {
		copyCounting(c, s, func() { answered.Store(true) })
		done <- struct{}{}
	}()
	<-done
	p.drop(c)
	p.drop(s)
	<-done
}

// copyCounting copies from src to dst, calling read for each chunk read.
func copyCounting(dst io.Writer, src io.Reader, read func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			read()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Flights is how many times, so far, a client of the proxy sent something
// after the server last answered it: the round trips through the proxy.
func (p *Proxy) Flights() int64 { return p.flights.Load() }

func (p *Proxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// Down cuts every connection through the proxy and refuses new ones (they
// are closed as soon as they are accepted) until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Up lets connections through again.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
