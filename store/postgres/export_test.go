package postgres

import (
	"context"

	"github.com/mcpd/mcpd/store"
)

// TokenCacheOn reports whether the token cache is on (its listener
// listens).
func (s *Store) TokenCacheOn() bool { return s.tokens != nil && s.tokens.isOn() }

// SweepOnce is one round of RunJanitor: swept is false when another
// process held the janitor's lock.
func (s *Store) SweepOnce(ctx context.Context) (store.SweepStats, bool, error) {
	return s.sweepOnce(ctx)
}

// LockID is the advisory lock id of a LockKey key.
func LockID(key string) int64 { return lockID(key) }

// LockJanitor is the advisory lock id of the janitor.
const LockJanitor = lockJanitor

// ListenerApplicationName is the application_name of the listener's
// connection.
const ListenerApplicationName = listenerApplicationName
