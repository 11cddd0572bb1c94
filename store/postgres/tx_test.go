package postgres

import (
	"context"
	"testing"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// TestPipelinedTransactions checks what the round-trip saving of txState
// must not change: a transaction sees its own deferred writes, a deferred
// write that fails fails the commit and leaves nothing behind, and a
// rollback discards what was never sent.
func TestPipelinedTransactions(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.URL(t), &Options{NoTokenCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(t *testing.T, ctx context.Context) int {
		t.Helper()
		var n int
		q, err := s.q(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.QueryRow(ctx, "SELECT count(*) FROM secrets").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(ctx context.Context, name string) error {
		return s.deferExec(ctx, "INSERT INTO secrets (name, value) VALUES ($1, '\\x00')", name)
	}

	t.Run("a read in a transaction sees the writes deferred before it", func(t *testing.T) {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Rollback(tx)
		for _, name := range []string{"a", "b"} {
			if err := insert(tx, name); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, tx); n != 2 {
			t.Errorf("inside: got %d rows; want 2", n)
		}
		if n := count(t, ctx); n != 0 {
			t.Errorf("outside before commit: got %d rows; want 0", n)
		}
		if err := insert(tx, "c"); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(tx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, ctx); n != 3 {
			t.Errorf("after commit: got %d rows; want 3 (the write deferred to the commit)", n)
		}
	})

	t.Run("a deferred write that fails fails the commit and leaves nothing", func(t *testing.T) {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := insert(tx, "d"); err != nil {
			t.Fatal(err)
		}
		if err := insert(tx, "a"); err != nil { // a duplicate: fails when sent
			t.Fatalf("deferExec answered at once: %v", err)
		}
		if err := s.Commit(tx); err == nil {
			t.Fatal("Commit: got nil; want the deferred write's error")
		}
		if err := s.Rollback(tx); err != nil {
			t.Errorf("Rollback after a failed commit: %v", err)
		}
		if n := count(t, ctx); n != 3 {
			t.Errorf("after the failed commit: got %d rows; want the 3 of before", n)
		}
	})

	t.Run("a rollback discards deferred writes never sent", func(t *testing.T) {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := insert(tx, "e"); err != nil {
			t.Fatal(err)
		}
		if err := s.Rollback(tx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, ctx); n != 3 {
			t.Errorf("after rollback: got %d rows; want 3", n)
		}
	})

	t.Run("the pool gets its connections back idle", func(t *testing.T) {
		for range 3 {
			tx, err := s.BeginTX(ctx)
			if err != nil {
				t.Fatal(err)
			}
			insert(tx, "a") // fails at commit
			s.Commit(tx)
			s.Rollback(tx)
		}
		if st := s.pool.Stat(); st.AcquiredConns() != 0 {
			t.Errorf("connections still acquired after the transactions ended: %d", st.AcquiredConns())
		}
		if n := count(t, ctx); n != 3 {
			t.Errorf("rows: got %d; want 3", n)
		}
	})
}
