package store

import (
	"context"
	"sync"
)

// keyLocks is LockKey of the bbolt store: one process owns the file (its
// file lock), so a lock in memory is a lock for everyone.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // holds one token while the key is locked
	refs int           // holders and waiters; the entry goes at zero
}

// LockKey waits until no other caller holds key, or ctx ends, and returns
// the function that gives it up (calling it again does nothing).
func (s *Store) LockKey(ctx context.Context, key string) (func(), error) {
	return s.locks.lock(ctx, key)
}

func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{held: make(chan struct{}, 1)}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()

	select {
	case kl.held <- struct{}{}:
	case <-ctx.Done():
		l.drop(key, kl)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-kl.held
			l.drop(key, kl)
		})
	}, nil
}

func (l *keyLocks) drop(key string, kl *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kl.refs--; kl.refs == 0 {
		delete(l.m, key)
	}
}
