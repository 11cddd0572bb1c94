package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// txKey is the context key under which BeginTX carries its transaction.
type txKey struct{}

// txState is one open writable transaction shared by the contexts derived
// from a BeginTX.
type txState struct {
	tx     *bolt.Tx
	closed bool
	doomed bool // a nested Rollback happened: the outer Commit must fail
}

// txFrame is what a context carries: the shared state and whether this
// BeginTX opened it (outer) or joined it (nested).
type txFrame struct {
	state  *txState
	nested bool
}

// errTxClosed is returned when a context's transaction is already committed
// or rolled back.
var errTxClosed = errors.New("store: transaction already closed")

func frameFrom(ctx context.Context) *txFrame {
	f, _ := ctx.Value(txKey{}).(*txFrame)
	return f
}

// BeginTX opens a writable transaction and returns a context carrying it;
// every store method called with that context runs inside it until Commit
// or Rollback. BeginTX on a context that already carries an open
// transaction joins it: the inner Commit does nothing and the inner
// Rollback makes the outer Commit roll back and fail.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if f := frameFrom(ctx); f != nil && !f.state.closed {
		return context.WithValue(ctx, txKey{}, &txFrame{state: f.state, nested: true}), nil
	}
	if err := ctx.Err(); err != nil {
		return ctx, err
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return ctx, fmt.Errorf("begin transaction: %w", err)
	}
	return context.WithValue(ctx, txKey{}, &txFrame{state: &txState{tx: tx}}), nil
}

// Commit commits the transaction BeginTX put in ctx.
func (s *Store) Commit(ctx context.Context) error {
	f := frameFrom(ctx)
	if f == nil {
		return errors.New("store: commit without a transaction")
	}
	if f.state.closed {
		return errTxClosed
	}
	if f.nested {
		return nil
	}
	f.state.closed = true
	if f.state.doomed {
		_ = f.state.tx.Rollback()
		return errors.New("store: transaction rolled back by a nested rollback")
	}
	if err := f.state.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback discards the transaction BeginTX put in ctx. Rolling back a
// closed transaction is not an error, so it can follow a failed Commit.
func (s *Store) Rollback(ctx context.Context) error {
	f := frameFrom(ctx)
	if f == nil {
		return errors.New("store: rollback without a transaction")
	}
	if f.state.closed {
		return nil
	}
	if f.nested {
		f.state.doomed = true
		return nil
	}
	f.state.closed = true
	return f.state.tx.Rollback()
}

// view runs fn in the context's transaction, or in a read-only one.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(f.state.tx)
	}
	return s.db.View(fn)
}

// update runs fn in the context's transaction, or in a writable one of its
// own. A write alone commits at once; writes that overlap share commits
// through bbolt's Batch, so fn may run more than once and must only act on
// tx and on variables it sets afresh each run.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(f.state.tx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.batch {
		return s.db.Update(fn)
	}
	defer s.writers.Add(-1)
	if s.writers.Add(1) > 1 {
		return s.db.Batch(fn)
	}
	return s.db.Update(fn)
}

// updateOnce is update for fn that must run exactly once (it calls code of
// the caller), so it never batches.
func (s *Store) updateOnce(ctx context.Context, fn func(*bolt.Tx) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(f.state.tx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}
