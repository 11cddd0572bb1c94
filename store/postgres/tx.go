package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// txKey is the context key under which BeginTX carries its transaction.
type txKey struct{}

// txState is one open transaction shared by the contexts derived from a
// BeginTX.
type txState struct {
	tx      pgx.Tx
	closed  bool
	doomed  bool    // a nested Rollback happened: the outer Commit must fail
	changed changed // what this process's token cache drops at commit
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
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return ctx, fmt.Errorf("postgres: begin transaction: %w", err)
	}
	return context.WithValue(ctx, txKey{}, &txFrame{state: &txState{tx: tx}}), nil
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
	f.state.closed = true
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if f.state.doomed {
		_ = f.state.tx.Rollback(ectx)
		return errNestedRollback
	}
	if err := f.state.tx.Commit(ectx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	s.dropCached(f.state.changed)
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
	if err := f.state.tx.Rollback(ectx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("postgres: rollback: %w", err)
	}
	return nil
}

// querier is what pgx.Tx and *pgxpool.Pool have in common.
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
		return f.state.tx, nil
	}
	return s.pool, nil
}

// update runs fn in ctx's transaction, or in one of its own that commits
// when fn succeeds; methods called by fn with the context it is given run
// in that transaction.
func (s *Store) update(ctx context.Context, fn func(ctx context.Context) error) (err error) {
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
