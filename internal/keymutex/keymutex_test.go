package keymutex

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestMutex(t *testing.T) {
	t.Run("one key is held by one goroutine at a time", func(t *testing.T) {
		var k Mutex
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				unlock := k.Lock("token")
				defer unlock()
				n := inside.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				inside.Add(-1)
			})
		}
		wg.Wait()
		if got := most.Load(); got != 1 {
			t.Errorf("at most %d goroutines held one key at once; want 1", got)
		}
	})

	t.Run("other keys do not wait", func(t *testing.T) {
		var k Mutex
		unlockA := k.Lock("a")
		defer unlockA()
		unlockB := k.Lock("b") // would deadlock if keys shared a lock
		unlockB()
	})

	t.Run("a key is forgotten once nobody holds or waits for it", func(t *testing.T) {
		var k Mutex
		unlock := k.Lock("a")
		if got := k.held(); got != 1 {
			t.Fatalf("held = %d while locked; want 1", got)
		}
		unlock()
		if got := k.held(); got != 0 {
			t.Errorf("held = %d after unlock; want 0", got)
		}
	})
}
