package dpop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// ReplayStore is the durable record of proofs a WriteBehind keeps.
type ReplayStore interface {
	// RememberProofJTI records key until exp; it returns an error
	// wrapping ErrReplay, and records nothing, when key is recorded and
	// has not expired.
	RememberProofJTI(ctx context.Context, key string, exp time.Time) error
	// ProofJTIKnown reports whether key is recorded and has not expired,
	// as of the last finished write.
	ProofJTIKnown(ctx context.Context, key string) (bool, error)
}

// Transactional is what a ReplayStore may also offer (fosite's
// storage.Transactional): a flush then writes all its records in one
// transaction, one commit.
type Transactional interface {
	BeginTX(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Defaults of WriteBehindConfig.
const (
	DefaultMaxPending    = 1 << 16
	DefaultFlushInterval = 20 * time.Millisecond
)

// WriteBehind is a ReplayCache over a ReplayStore that keeps the check off
// the disk's critical path. Remember decides at once, under one lock, from
// the records not yet written (in memory) and the store's committed ones
// (a read); the new record is written by Run in the background, all the
// records of a FlushInterval in one commit, and removed from memory only
// once its commit is durable, so at every moment a record is in memory, in
// the store or both. A request thus never waits for a disk sync, and a
// steady stream of proofs costs at most one commit per FlushInterval.
//
// What is given up: a crash (not a clean stop: Run flushes before it
// returns) loses the records of the last FlushInterval and unfinished
// write, some tens of milliseconds of proofs, whose replay would then pass until their iat
// window closes; and two processes sharing one store see each other's
// records only once written. Use the ReplayStore directly (adapted to
// ReplayCache) where that matters more than a disk sync per proof.
type WriteBehind struct {
	store      ReplayStore
	tx         Transactional // nil: one write per record
	log        *slog.Logger
	now        func() time.Time
	maxPending int
	interval   time.Duration

	mu      sync.Mutex // held across the store read in Remember
	pending map[string]time.Time
	wake    chan struct{}
	flushMu sync.Mutex // one flush at a time
}

// WriteBehindConfig configures a WriteBehind. Store is required.
type WriteBehindConfig struct {
	Store ReplayStore
	// Logger receives write failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil → time.Now.
	Now func() time.Time
	// MaxPending bounds the unwritten records; past it Remember fails
	// (the store is not keeping up or is failing); 0 → DefaultMaxPending.
	// A record of a Checker's proof (a 43-byte ReplayKey and its expiry)
	// takes about 100 bytes, twice that while a flush writes it: 65536
	// are about 6 to 13 MB, reached only when the disk stalls for seconds.
	MaxPending int
	// FlushInterval is the least time between the starts of two flushes
	// by Run; 0 → DefaultFlushInterval.
	FlushInterval time.Duration
}

// NewWriteBehind returns a WriteBehind; call Run to write its records.
func NewWriteBehind(cfg WriteBehindConfig) (*WriteBehind, error) {
	if cfg.Store == nil {
		return nil, errors.New("dpop: WriteBehindConfig.Store is required")
	}
	w := &WriteBehind{
		store:      cfg.Store,
		log:        cfg.Logger,
		now:        cfg.Now,
		maxPending: cfg.MaxPending,
		interval:   cfg.FlushInterval,
		pending:    make(map[string]time.Time),
		wake:       make(chan struct{}, 1),
	}
	w.tx, _ = cfg.Store.(Transactional)
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.maxPending <= 0 {
		w.maxPending = DefaultMaxPending
	}
	if w.interval <= 0 {
		w.interval = DefaultFlushInterval
	}
	return w, nil
}

// errBacklog is Remember's answer when MaxPending records are unwritten.
var errBacklog = errors.New("dpop: too many proof records not yet written")

// Remember records key until exp, or returns ErrReplay when it is
// recorded, in memory or in the store, and has not expired.
func (w *WriteBehind) Remember(ctx context.Context, key string, exp time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.pending[key]; ok && w.now().Before(old) {
		return ErrReplay
	}
	// Under the lock: a record leaves pending only after its commit, and
	// only under this lock, so this read sees every record pending
	// no longer holds.
	known, err := w.store.ProofJTIKnown(ctx, key)
	if err != nil {
		return err
	}
	if known {
		return ErrReplay
	}
	if len(w.pending) >= w.maxPending {
		return errBacklog
	}
	w.pending[key] = exp
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run writes records as they come, at most one flush per FlushInterval,
// until ctx ends, then writes what is left (with a context of its own) and
// returns. Call it once.
func (w *WriteBehind) Run(ctx context.Context) {
	final := func() {
		if err := w.Flush(context.WithoutCancel(ctx)); err != nil {
			w.log.Error("dpop: writing proof records at shutdown failed", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			final()
			return
		case <-w.wake:
		}
		start := time.Now()
		if err := w.Flush(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("dpop: writing proof records failed; retrying with the next", "err", err)
		}
		select {
		case <-ctx.Done():
			final()
			return
		case <-time.After(w.interval - time.Since(start)):
		}
	}
}

// Flush writes every record not yet written and returns once they are
// durable. Records whose write failed stay in memory for the next flush.
func (w *WriteBehind) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := make(map[string]time.Time, len(w.pending))
	now := w.now()
	for k, exp := range w.pending {
		if !now.Before(exp) { // expired unwritten: nothing to keep
			delete(w.pending, k)
			continue
		}
		batch[k] = exp
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := w.write(ctx, batch); err != nil {
		return err
	}
	w.mu.Lock()
	for k, exp := range batch {
		if w.pending[k].Equal(exp) {
			delete(w.pending, k)
		}
	}
	w.mu.Unlock()
	return nil
}

// Pending returns how many records are not yet written.
func (w *WriteBehind) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

func (w *WriteBehind) write(ctx context.Context, batch map[string]time.Time) (err error) {
	txCtx := ctx
	if w.tx != nil {
		if txCtx, err = w.tx.BeginTX(ctx); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer func() {
			if err != nil {
				w.tx.Rollback(txCtx)
			}
		}()
	}
	for k, exp := range batch {
		// ErrReplay: another process sharing the store wrote it first;
		// the record is there either way.
		if err := w.store.RememberProofJTI(txCtx, k, exp); err != nil && !errors.Is(err, ErrReplay) {
			return err
		}
	}
	if w.tx != nil {
		if err := w.tx.Commit(txCtx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}
