package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// txKey is the context key under which BeginTX carries its transaction.
type txKey struct{}

// txState is one open transaction shared by the contexts derived from a
// BeginTX: the writer slot of the group commit and its shared bbolt
// transaction.
type txState struct {
	w      *wtx
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

// errNestedRollback fails the Commit of a transaction a nested BeginTX
// rolled back.
var errNestedRollback = errors.New("store: transaction rolled back by a nested rollback")

func frameFrom(ctx context.Context) *txFrame {
	f, _ := ctx.Value(txKey{}).(*txFrame)
	return f
}

// BeginTX opens a writable transaction and returns a context carrying it;
// every store method called with that context runs inside it until Commit
// or Rollback. BeginTX on a context that already carries an open
// transaction joins it: the inner Commit does nothing and the inner
// Rollback makes the outer Commit roll back and fail.
//
// Transactions run one at a time, each seeing everything the ones before
// it wrote, and Commit returns once the transaction is durable. Commits
// of transactions that end close together share one disk sync.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if f := frameFrom(ctx); f != nil && !f.state.closed {
		return context.WithValue(ctx, txKey{}, &txFrame{state: f.state, nested: true}), nil
	}
	if err := ctx.Err(); err != nil {
		return ctx, err
	}
	w, err := s.gc.acquire()
	if err != nil {
		return ctx, fmt.Errorf("begin transaction: %w", err)
	}
	return context.WithValue(ctx, txKey{}, &txFrame{state: &txState{w: w}}), nil
}

// Commit commits the transaction BeginTX put in ctx and returns when it is
// durable.
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
		s.gc.release(f.state.w, errNestedRollback)
		return errNestedRollback
	}
	return s.gc.release(f.state.w, nil)
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
	if err := s.gc.release(f.state.w, errRolledBack); !errors.Is(err, errRolledBack) {
		return err
	}
	return nil
}

// errRolledBack is what Rollback hands the group commit as the reason.
var errRolledBack = errors.New("store: rolled back")

// view runs fn in the context's transaction, or in a read-only one, which
// sees only what finished commits wrote. A read that finds the file it
// loaded closed by Compact runs again on the file that replaced it.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(f.state.w.tx)
	}
	for {
		db := s.db.Load()
		err := db.View(fn)
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) && s.db.Load() != db {
			continue
		}
		return err
	}
}

// update runs fn once in the context's transaction, or in a writer turn of
// its own that returns when fn's writes are durable. Writes that overlap
// share one commit (see committer).
func (s *Store) update(ctx context.Context, fn func(*wtx) error) error {
	if f := frameFrom(ctx); f != nil {
		if f.state.closed {
			return errTxClosed
		}
		return fn(f.state.w)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := s.gc.acquire()
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok { // fn panicked: give the writer slot back before unwinding
			s.gc.release(w, errRolledBack)
		}
	}()
	err = fn(w)
	ok = true
	return s.gc.release(w, err)
}
