package dpoptest

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/mcpd/mcpd/dpop"
)

// Replay is a dpop.ReplayCache in memory: a key is refused while the
// expiry it was remembered with lies ahead of Now.
type Replay struct {
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]time.Time
}

// NewReplay returns an empty cache that reads the time from now.
func NewReplay(now func() time.Time) *Replay {
	return &Replay{now: now, keys: map[string]time.Time{}}
}

// Remember records key until exp, or returns dpop.ErrReplay for a key it
// holds.
func (m *Replay) Remember(_ context.Context, key string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.keys[key]; ok && m.now().Before(old) {
		return dpop.ErrReplay
	}
	m.keys[key] = exp
	return nil
}

// Entries is a copy of what the cache holds: each key and its expiry.
func (m *Replay) Entries() map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.keys)
}
