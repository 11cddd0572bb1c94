package dpop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpd/mcpd/dpop"
)

// memStore is a ReplayStore in memory whose writes become visible only at
// Commit, like a store with transactions; fail makes writes fail.
type memStore struct {
	mu        sync.Mutex
	committed map[string]time.Time
	now       func() time.Time
	fail      error
	commits   int
	writes    int
}

type txKey struct{}

type memTx struct{ writes map[string]time.Time }

func newMemStore(now func() time.Time) *memStore {
	return &memStore{committed: map[string]time.Time{}, now: now}
}

func (m *memStore) RememberProofJTI(ctx context.Context, key string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if old, ok := m.committed[key]; ok && m.now().Before(old) {
		return dpop.ErrReplay
	}
	m.writes++
	if tx, ok := ctx.Value(txKey{}).(*memTx); ok {
		tx.writes[key] = exp
		return nil
	}
	m.committed[key] = exp
	m.commits++
	return nil
}

func (m *memStore) ProofJTIKnown(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.committed[key]
	return ok && m.now().Before(exp), nil
}

func (m *memStore) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, txKey{}, &memTx{writes: map[string]time.Time{}}), nil
}

func (m *memStore) Commit(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for k, v := range ctx.Value(txKey{}).(*memTx).writes {
		m.committed[k] = v
	}
	m.commits++
	return nil
}

func (m *memStore) Rollback(context.Context) error { return nil }

func TestWriteBehind(t *testing.T) {
	ctx := context.Background()
	now := func() time.Time { return t0 }
	exp := t0.Add(time.Minute)
	newWB := func(t *testing.T, st *memStore) *dpop.WriteBehind {
		w, err := dpop.NewWriteBehind(dpop.WriteBehindConfig{Store: st, Now: now, MaxPending: 4})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Run("a key is refused while it waits to be written", func(t *testing.T) {
		w := newWB(t, newMemStore(now))
		if err := w.Remember(ctx, "k", exp); err != nil {
			t.Fatal(err)
		}
		if err := w.Remember(ctx, "k", exp); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("second Remember: %v; want ErrReplay", err)
		}
	})
	t.Run("a flush writes every key in one commit and a written key is still refused", func(t *testing.T) {
		st := newMemStore(now)
		w := newWB(t, st)
		for i := range 3 {
			if err := w.Remember(ctx, fmt.Sprint("k", i), exp); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if w.Pending() != 0 || len(st.committed) != 3 || st.commits != 1 {
			t.Fatalf("after Flush: %d pending, %d written in %d commits; want 0, 3 in 1", w.Pending(), len(st.committed), st.commits)
		}
		if err := w.Remember(ctx, "k1", exp); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("Remember of a written key: %v; want ErrReplay", err)
		}
	})
	t.Run("a key written before a restart is refused after it", func(t *testing.T) {
		st := newMemStore(now)
		w := newWB(t, st)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { w.Run(runCtx); close(done) }()
		if err := w.Remember(ctx, "k", exp); err != nil {
			t.Fatal(err)
		}
		stop() // a clean stop flushes
		<-done
		if err := newWB(t, st).Remember(ctx, "k", exp); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("Remember after restart: %v; want ErrReplay", err)
		}
	})
	t.Run("a failed write keeps the keys for the next flush", func(t *testing.T) {
		st := newMemStore(now)
		w := newWB(t, st)
		if err := w.Remember(ctx, "k", exp); err != nil {
			t.Fatal(err)
		}
		st.fail = errors.New("disk full")
		if err := w.Flush(ctx); err == nil {
			t.Fatal("Flush with a failing store: nil")
		}
		if err := w.Remember(ctx, "k", exp); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("Remember after a failed flush: %v; want ErrReplay", err)
		}
		st.fail = nil
		if err := w.Flush(ctx); err != nil || w.Pending() != 0 || len(st.committed) != 1 {
			t.Fatalf("second Flush: %v, %d pending, %d written; want nil, 0, 1", err, w.Pending(), len(st.committed))
		}
	})
	t.Run("past MaxPending unwritten keys Remember fails instead of growing", func(t *testing.T) {
		w := newWB(t, newMemStore(now))
		for i := range 4 {
			if err := w.Remember(ctx, fmt.Sprint("k", i), exp); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Remember(ctx, "k4", exp); err == nil || errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("Remember past MaxPending: %v; want a backlog error", err)
		}
	})
	t.Run("of many goroutines remembering one key while flushes run, exactly one succeeds", func(t *testing.T) {
		for round := range 20 {
			st := newMemStore(now)
			w := newWB(t, st)
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok := 0
			for range 8 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					if err := w.Remember(ctx, "race", exp); err == nil {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}()
				go func() { defer wg.Done(); w.Flush(ctx) }()
			}
			wg.Wait()
			if ok != 1 {
				t.Fatalf("round %d: %d goroutines succeeded; want 1", round, ok)
			}
		}
	})
}
