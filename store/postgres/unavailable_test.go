package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
	"github.com/mcpd/mcpd/store/storetest"
)

// logBuffer collects a store's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// wantUnavailable fails the test unless err is store.ErrUnavailable
// saying why.
func wantUnavailable(t *testing.T, what string, err error, why string) {
	t.Helper()
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), why) {
		t.Errorf("%s: %v; want store.ErrUnavailable: %s", what, err, why)
	}
}

// writeToken stores an access token in a transaction, as the token
// endpoint does: its write goes out with the commit.
func writeToken(s *postgres.Store, sig string) error {
	tctx, err := s.BeginTX(bg)
	if err != nil {
		return err
	}
	defer s.Rollback(tctx)
	if err := s.CreateAccessTokenSession(tctx, sig, newRequest("g-"+sig, "c1", "alice")); err != nil {
		return err
	}
	return s.Commit(tctx)
}

// TestReadOnlyDatabase: a database that turns read-only under a running
// store, as after a failover onto a hot standby, answers every write with
// store.ErrUnavailable (SQLSTATE 25006), logged once, while reads go on
// and Health says why; once it takes writes again (the standby promoted),
// writes succeed without a new store.
func TestReadOnlyDatabase(t *testing.T) {
	url, role := pgtest.Role(t, pgtest.URL(t))
	var logs logBuffer
	clk := storetest.NewClock()
	s := open(t, url, &postgres.Options{Now: clk.Now, NoTokenCache: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, s.CreateClient(bg, &store.Client{ID: "c1", TokenEndpointAuthMethod: "none", Source: store.SourceDynamic}))
	must(t, writeToken(s, "at-before"))

	pgtest.SetReadOnly(t, role, true)
	// The pool's sessions were ended: the first statements may meet a
	// dead connection, which is unavailable too, before new read-only ones.
	const why = "read-only"
	eventually(t, "a write refused as read-only", 5*time.Second, func() bool {
		err := s.CreateUser(bg, "bob", "pw")
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("CreateUser on a read-only database: %v; want store.ErrUnavailable", err)
		}
		return strings.Contains(err.Error(), why)
	})
	for range 20 {
		clk.Advance(time.Second)
		wantUnavailable(t, "CreateUser", s.CreateUser(bg, "bob", "pw"), why)
		wantUnavailable(t, "a token written in a transaction", writeToken(s, "at-during"), why)
		_, err := s.SaveNote(bg, "alice", store.Note{Title: "t", Body: "b"})
		wantUnavailable(t, "SaveNote", err, why)
	}
	if _, err := s.LookupAccessToken(bg, "at-before"); err != nil {
		t.Errorf("reading a token on a read-only database: %v", err)
	}
	if err := s.Ping(bg); err != nil {
		t.Errorf("Ping on a read-only database: %v", err)
	}
	if h := s.Health(bg); h.Writable || !strings.Contains(h.Reason, why) {
		t.Errorf("Health = %+v; want not writable: %s", h, why)
	}
	if n := logs.count("level=ERROR msg=\"store: writes fail: the database is read-only"); n != 1 {
		t.Errorf("%d lines saying the database is read-only for 60 failed writes in 20 s; want 1:\n%s", n, logs.b.String())
	}
	// The ended sessions came first: that reason, once, is the only other.
	if n := logs.count("level=ERROR"); n > 2 {
		t.Errorf("%d error lines; want the read-only one and at most one for the ended sessions:\n%s", n, logs.b.String())
	}

	pgtest.SetReadOnly(t, role, false)
	eventually(t, "writes succeed again", 5*time.Second, func() bool {
		err := writeToken(s, "at-after")
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("a write after the database took writes again: %v", err)
		}
		return err == nil
	})
	if h := s.Health(bg); !h.Writable {
		t.Errorf("Health after a write succeeded = %+v; want writable", h)
	}
	if n := logs.count("writes succeed again"); n != 1 {
		t.Errorf("%d lines saying writes succeed again; want 1", n)
	}
}

// TestDatabaseAway: a database the store cannot reach (stopped, the
// network down) answers reads and writes, transactions and locks, with
// store.ErrUnavailable, logged once; Health says why and, when nothing
// else writes, sees it come back by a write of its own; everything works
// again without a new store.
func TestDatabaseAway(t *testing.T) {
	proxy, url := pgtest.NewProxy(t, pgtest.URL(t))
	var logs logBuffer
	clk := storetest.NewClock()
	s := open(t, url, &postgres.Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, s.CreateClient(bg, &store.Client{ID: "c1", TokenEndpointAuthMethod: "none", Source: store.SourceDynamic}))
	must(t, writeToken(s, "at-1"))

	proxy.Down()
	const why = "database"
	wantUnavailable(t, "Ping", s.Ping(bg), why)
	wantUnavailable(t, "CreateUser", s.CreateUser(bg, "bob", "pw"), why)
	wantUnavailable(t, "a token written in a transaction", writeToken(s, "at-2"), why)
	_, err := s.ListUsers(bg)
	wantUnavailable(t, "ListUsers", err, why)
	_, err = s.LookupAccessToken(bg, "at-unknown")
	wantUnavailable(t, "LookupAccessToken", err, why)
	_, err = s.LockKey(bg, "k")
	wantUnavailable(t, "LockKey", err, why)
	_, _, err = s.SweepOnce(bg)
	wantUnavailable(t, "a janitor round", err, why)
	if h := s.Health(bg); h.Writable || !strings.Contains(h.Reason, why) {
		t.Errorf("Health = %+v; want not writable: %s", h, why)
	}
	if n := logs.count("level=ERROR"); n != 1 {
		t.Errorf("%d error lines while the database was away; want 1:\n%s", n, logs.b.String())
	}

	proxy.Up()
	clk.Advance(5 * time.Second) // Health's next write of its own
	eventually(t, "Health sees the database back", 5*time.Second, func() bool {
		clk.Advance(5 * time.Second)
		return s.Health(bg).Writable
	})
	must(t, s.CreateUser(bg, "bob", "pw"))
	must(t, writeToken(s, "at-3"))
	if _, err := s.LookupAccessToken(bg, "at-1"); err != nil {
		t.Errorf("a token written before: %v", err)
	}
	unlock, err := s.LockKey(bg, "k")
	must(t, err)
	unlock()
	eventually(t, "the token cache listening again", 10*time.Second, s.TokenCacheOn)
}

// TestDiskFullDatabase: when the disk under the database's tables fills
// (SQLSTATE 53100), writes answer store.ErrUnavailable, logged once,
// acknowledged tokens read back, and writes succeed again once room is
// freed, without a new store.
func TestDiskFullDatabase(t *testing.T) {
	url := pgtest.URL(t)
	var logs logBuffer
	s := open(t, url, &postgres.Options{NoTokenCache: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, s.CreateClient(bg, &store.Client{ID: "c1", TokenEndpointAuthMethod: "none", Source: store.SourceDynamic}))
	spare := pgtest.SmallDisk(t, url, 1<<20, 256<<10, "tokens")

	const why = "disk is full"
	var acked []string
	for i, failures := 0, 0; failures < 20; i++ {
		if i == 100000 {
			t.Fatalf("the disk never filled: %d tokens written", len(acked))
		}
		sig := fmt.Sprintf("at-%d", i)
		switch err := writeToken(s, sig); {
		case err == nil:
			acked = append(acked, sig)
			failures = 0
		case errors.Is(err, store.ErrUnavailable) && strings.Contains(err.Error(), why):
			failures++
		default:
			t.Fatalf("token %d: %v; want success or store.ErrUnavailable: %s", i, err, why)
		}
	}
	t.Logf("%d tokens written before the 1 MiB disk filled", len(acked))
	if h := s.Health(bg); h.Writable || !strings.Contains(h.Reason, why) {
		t.Errorf("Health = %+v; want not writable: %s", h, why)
	}
	for _, sig := range []string{acked[0], acked[len(acked)-1]} {
		if _, err := s.LookupAccessToken(bg, sig); err != nil {
			t.Errorf("an acknowledged token on a full disk: %v", err)
		}
	}
	if n := logs.count("level=ERROR"); n != 1 {
		t.Errorf("%d error lines while the disk was full; want 1", n)
	}

	if err := os.Remove(spare); err != nil {
		t.Fatal(err)
	}
	must(t, writeToken(s, "at-after"))
	if h := s.Health(bg); !h.Writable {
		t.Errorf("Health after room was freed = %+v; want writable", h)
	}
}
