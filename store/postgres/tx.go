package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// txKey is the context key under which BeginTX carries its transaction.
type txKey struct{}

// txState is one open transaction shared by the contexts derived from a
// BeginTX. Its statements are pipelined to save round trips: BEGIN goes
// out with the transaction's first statement, and writes whose answer
// nobody waits for (deferExec) go out with the next statement or with
// COMMIT. A refresh rotation, whose transaction is a read, the rotation
// and three writes, then takes three round trips instead of seven.
type txState struct {
	conn    *pgxpool.Conn
	began   bool     // BEGIN has been sent
	pending []queued // statements not sent yet
	closed  bool
	doomed  bool    // a nested Rollback happened: the outer Commit must fail
	changed changed // what this process's token cache drops at commit
}

// queued is a statement waiting to go out with the next one.
type queued struct {
	sql  string
	args []any
}

// changed is what a write did to access tokens: the keys it wrote or
// deleted, or everything (a client went).
type changed struct {
	keys [][]byte
	all  bool
}

// txFrame is what a context carries: the shared state and whether this
// BeginTX opened it (outer) or joined it (nested).
type txFrame struct {
	state  *txState
	nested bool
}

var (
	errTxClosed       = errors.New("postgres: transaction already closed")
	errNestedRollback = errors.New("postgres: transaction rolled back by a nested rollback")
)

// endTimeout bounds a commit or rollback, which runs even when the
// request's context has ended, so its outcome does not depend on when a
// client hung up.
const endTimeout = 30 * time.Second

func frameFrom(ctx context.Context) *txFrame {
	f, _ := ctx.Value(txKey{}).(*txFrame)
	return f
}

// BeginTX opens a transaction and returns a context carrying it; every
// store method called with that context runs inside it until Commit or
// Rollback. BeginTX on a context that already carries an open transaction
// joins it: the inner Commit does nothing and the inner Rollback makes the
// outer Commit roll back and fail. Transactions run at READ COMMITTED;
// the methods that must not race take row locks.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if f := frameFrom(ctx); f != nil && !f.state.closed {
		return context.WithValue(ctx, txKey{}, &txFrame{state: f.state, nested: true}), nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return ctx, fmt.Errorf("postgres: begin transaction: %w", s.fail(err))
	}
	return context.WithValue(ctx, txKey{}, &txFrame{state: &txState{conn: conn}}), nil
}

// Commit commits the transaction BeginTX put in ctx and returns when it is
// durable.
func (s *Store) Commit(ctx context.Context) error {
	f := frameFrom(ctx)
	if f == nil {
		return errors.New("postgres: commit without a transaction")
	}
	if f.state.closed {
		return errTxClosed
	}
	if f.nested {
		return nil
	}
	st := f.state
	st.closed = true
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if st.doomed {
		st.end(ectx)
		return errNestedRollback
	}
	if !st.began && len(st.pending) == 0 {
		st.conn.Release() // nothing was sent: nothing to commit
		return nil
	}
	err := st.send(ectx, "COMMIT", nil, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("the transaction was rolled back (%s)", tag)
		}
		return err
	})
	if err != nil {
		st.end(ectx)
		return fmt.Errorf("postgres: commit: %w", s.fail(err))
	}
	st.conn.Release()
	s.wrote()
	s.dropCached(st.changed)
	return nil
}

// Rollback discards the transaction BeginTX put in ctx. Rolling back a
// closed transaction is not an error, so it can follow a failed Commit.
func (s *Store) Rollback(ctx context.Context) error {
	f := frameFrom(ctx)
	if f == nil {
		return errors.New("postgres: rollback without a transaction")
	}
	if f.state.closed {
		return nil
	}
	if f.nested {
		f.state.doomed = true
		return nil
	}
	f.state.closed = true
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	f.state.end(ectx)
	return nil
}

// end rolls back what was sent and gives the connection back; a
// connection left inside a transaction is closed by its pool.
func (st *txState) end(ctx context.Context) {
	st.pending = nil
	if st.began {
		_, _ = st.conn.Exec(ctx, "ROLLBACK")
	}
	st.conn.Release()
}

// send sends the pending statements (BEGIN first, the first time) and then
// sql, in one round trip, and hands the result of sql to last. The pending
// statements' errors come first.
func (st *txState) send(ctx context.Context, sql string, args []any, last func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	if !st.began {
		b.Queue("BEGIN")
	}
	for _, q := range st.pending {
		b.Queue(q.sql, q.args...)
	}
	b.Queue(sql, args...)
	n := b.Len() - 1
	st.began, st.pending = true, nil
	br := st.conn.SendBatch(ctx, b)
	for range n {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	err := last(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// querier is what a statement runs on: the pool, or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// q returns where a statement of ctx runs: its transaction, or the pool (a
// statement of its own, committed when it returns).
func (s *Store) q(ctx context.Context) (querier, error) {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return nil, errTxClosed
		}
		return checked{s, txQuerier{f.state}}, nil
	}
	return checked{s, s.pool}, nil
}

// deferExec runs a write whose answer nobody waits for: in a transaction
// it goes out with the transaction's next statement (its error then fails
// that statement or the commit); on its own it runs at once.
func (s *Store) deferExec(ctx context.Context, sql string, args ...any) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		f.state.pending = append(f.state.pending, queued{sql: sql, args: args})
		return nil
	}
	if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
		return s.fail(err)
	}
	s.wrote()
	return nil
}

// txQuerier runs statements in a transaction, each with whatever is
// pending before it.
type txQuerier struct{ st *txState }

func (t txQuerier) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.st.began && len(t.st.pending) == 0 {
		return t.st.conn.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	err := t.st.send(ctx, sql, args, func(br pgx.BatchResults) error {
		var err error
		tag, err = br.Exec()
		return err
	})
	return tag, err
}

func (t txQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.st.began && len(t.st.pending) == 0 {
		return t.st.conn.QueryRow(ctx, sql, args...)
	}
	return deferredRow{t: t, ctx: ctx, sql: sql, args: args}
}

func (t txQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if !t.st.began || len(t.st.pending) > 0 {
		// Send what is pending first; the query itself then streams.
		if err := t.st.send(ctx, "SELECT 1", nil, func(br pgx.BatchResults) error {
			_, err := br.Exec()
			return err
		}); err != nil {
			return nil, err
		}
	}
	return t.st.conn.Query(ctx, sql, args...)
}

// deferredRow is a QueryRow whose statement goes out, with the pending
// ones, when it is scanned.
type deferredRow struct {
	t    txQuerier
	ctx  context.Context
	sql  string
	args []any
}

func (r deferredRow) Scan(dest ...any) error {
	return r.t.st.send(r.ctx, r.sql, r.args, func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(dest...)
	})
}

// update runs fn in ctx's transaction, or in one of its own that commits
// when fn succeeds; methods called by fn with the context it is given run
// in that transaction.
func (s *Store) update(ctx context.Context, fn func(ctx context.Context) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(ctx)
	}
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	// On an error, and when fn panics, the transaction ends here; after
	// Commit, Rollback does nothing.
	defer s.Rollback(tctx)
	if err := fn(tctx); err != nil {
		return err
	}
	return s.Commit(tctx)
}

// changedTokens records that a write of ctx touched access tokens: at
// once when it ran on its own, at commit when it ran in a transaction.
func (s *Store) changedTokens(ctx context.Context, c changed) {
	if len(c.keys) == 0 && !c.all {
		return
	}
	if f := frameFrom(ctx); f != nil {
		f.state.changed.keys = append(f.state.changed.keys, c.keys...)
		f.state.changed.all = f.state.changed.all || c.all
		return
	}
	s.dropCached(c)
}

func (s *Store) dropCached(c changed) {
	if s.tokens != nil && (len(c.keys) > 0 || c.all) {
		s.tokens.invalidate(c.keys, c.all)
	}
}
