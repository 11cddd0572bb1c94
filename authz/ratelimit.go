package authz

import (
	"sync"
	"time"
)

// limiter counts events per key in fixed windows: at most limit events per
// window. It keeps its state in memory.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	counts map[string]*windowCount
	swept  time.Time
}

type windowCount struct {
	start time.Time
	n     int
}

func newLimiter(limit int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, now: now, counts: make(map[string]*windowCount)}
}

// current returns the live window of key, sweeping stale ones now and then.
func (l *limiter) current(key string) *windowCount {
	t := l.now()
	if t.Sub(l.swept) > l.window {
		for k, c := range l.counts {
			if t.Sub(c.start) >= l.window {
				delete(l.counts, k)
			}
		}
		l.swept = t
	}
	c := l.counts[key]
	if c == nil || t.Sub(c.start) >= l.window {
		c = &windowCount{start: t}
		l.counts[key] = c
	}
	return c
}

// Allow records one event for key and reports whether it is within the limit.
func (l *limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.current(key)
	if c.n >= l.limit {
		return false
	}
	c.n++
	return true
}

// allowAll records one event under the single key of a limiter that
// counts all addresses together; a nil limiter allows everything.
func (l *limiter) allowAll() bool {
	return l == nil || l.Allow("")
}

// Reserve counts one attempt for key before it is made and reports whether
// it is within the limit; a refused attempt is not counted. Reserving
// before the work (not counting after it) keeps parallel attempts from all
// passing the check before any of them is counted.
func (l *limiter) Reserve(key string) bool {
	return l.Allow(key)
}

// Release gives back an attempt Reserve counted, for one that turned out
// not to count (a successful login).
func (l *limiter) Release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.current(key); c.n > 0 {
		c.n--
	}
}
