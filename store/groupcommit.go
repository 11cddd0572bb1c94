package store

import (
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// DefaultMaxGroup is the default of Options.MaxGroup.
const DefaultMaxGroup = 128

// committer is the store's group commit. bbolt allows one writable
// transaction at a time and syncs the file twice for each commit, so a
// commit per write caps every writer at the disk's sync rate. The
// committer instead hands one writable bbolt transaction to writers in
// turn (the writer slot); a writer runs its changes, gives the slot up and
// waits, and the transaction commits once no other writer is waiting for
// the slot, making every change in it durable with one sync. While that
// commit runs, the next writers queue for the slot, so under load each
// commit carries the writes that arrived during the one before.
//
// Writers are serial: each sees everything the ones before it wrote, as
// with one bbolt transaction each. A writer that fails undoes its own
// changes from a journal without touching those of the writers before it
// (a bbolt transaction has no savepoints). Readers outside the slot use
// read-only bbolt transactions and see only what finished commits wrote,
// never a group still being written or one that is rolled back. (A commit
// whose last disk sync fails may have been seen, as with bbolt alone.) If a
// commit fails, every writer in it gets the error.
type committer struct {
	db  *atomic.Pointer[bolt.DB] // the store's file, which Compact replaces while paused
	max int                      // most writers per commit
	// committed runs after each commit, before its writers return, with
	// the access-token keys the commit wrote and whether it deleted a
	// client (Store.tokens.invalidate).
	committed func(tokens [][]byte, clientsGone bool)
	// outcome turns a commit's error (nil for success) into what its
	// writers get (Store.commitOutcome).
	outcome func(err error) error

	mu         sync.Mutex
	slotFree   sync.Cond // signalled when a waiter for the slot may take it
	idle       sync.Cond // broadcast when the slot is free and nothing commits
	paused     bool      // pause holds writers back
	busy       bool      // a writer holds the slot
	queued     int       // writers waiting for the slot
	committing bool      // a commit is under way outside mu
	tx         *bolt.Tx  // the open shared transaction; nil between commits
	group      *group    // the writers that finished in tx
	commits    int       // commits made, for tests
}

// group is the writers that share one commit.
type group struct {
	n       int           // writers that finished in the transaction
	changed               // what their writes touched
	done    chan struct{} // closed when the commit has ended
	err     error         // the commit's error, set before done closes
}

func newCommitter(db *atomic.Pointer[bolt.DB], max int, committed func([][]byte, bool), outcome func(error) error) *committer {
	c := &committer{db: db, max: max, committed: committed, outcome: outcome}
	c.slotFree.L = &c.mu
	c.idle.L = &c.mu
	return c
}

// pause commits the open group, waits for the writer in the slot and the
// commit under way, and holds every later writer back until resume: in
// between, nothing writes to the file.
func (c *committer) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.paused { // one pause at a time
		c.idle.Wait()
	}
	c.paused = true
	c.commitReady()
	for c.busy || c.committing || c.group != nil {
		c.idle.Wait()
	}
}

// resume lets the writers pause held back go on.
func (c *committer) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = false
	c.slotFree.Broadcast()
	c.idle.Broadcast()
}

// acquire waits for the writer slot and returns the transaction to write
// in. The caller must call release exactly once.
func (c *committer) acquire() (*wtx, error) {
	c.mu.Lock()
	c.queued++
	for c.busy || c.paused || (c.group != nil && c.group.n >= c.max) {
		c.slotFree.Wait()
	}
	c.queued--
	c.busy = true
	tx, g := c.tx, c.group
	c.mu.Unlock()

	if tx == nil {
		// Waits while the previous group's commit holds bbolt's writer
		// lock; the writers queued behind this one form the next group.
		var err error
		if tx, err = c.db.Load().Begin(true); err != nil {
			c.mu.Lock()
			c.busy = false
			c.slotFree.Signal()
			c.idle.Broadcast()
			c.commitReady()
			c.mu.Unlock()
			return nil, err
		}
		g = &group{done: make(chan struct{})}
		c.mu.Lock()
		c.tx, c.group = tx, g
		c.mu.Unlock()
	}
	w := &wtx{tx: tx}
	if g.n > 0 {
		// Others' changes are in tx: a failure must undo only ours.
		w.j = &journal{}
	}
	return w, nil
}

// release gives the slot back. With failed nil it returns when w's
// changes are durable (or the commit's error); otherwise it undoes w's
// changes and returns failed.
func (c *committer) release(w *wtx, failed error) error {
	c.mu.Lock()
	g := c.group
	if failed != nil {
		switch {
		case w.j == nil:
			// Nothing but w's changes in tx: drop the transaction.
			_ = c.tx.Rollback()
			c.tx, c.group = nil, nil
		default:
			if err := w.j.undo(); err != nil {
				// tx holds changes nobody can vouch for: fail them all.
				_ = c.tx.Rollback()
				c.tx, c.group = nil, nil
				g.err = fmt.Errorf("store: undoing a failed write: %w", err)
				close(g.done)
			}
		}
		c.busy = false
		c.slotFree.Signal()
		c.idle.Broadcast()
		c.commitReady()
		c.mu.Unlock()
		return failed
	}
	g.n++
	g.changed.add(w.changed)
	c.busy = false
	c.slotFree.Signal()
	c.idle.Broadcast()
	c.commitReady()
	c.mu.Unlock()
	<-g.done
	return g.err
}

// commitReady commits the open group when no writer holds the slot and
// none is waiting for it (or the group is full, or a pause waits), and
// keeps doing so for the groups that form meanwhile. It runs with mu held
// and releases it during each commit.
func (c *committer) commitReady() {
	for !c.committing && !c.busy && c.group != nil && c.group.n > 0 &&
		(c.queued == 0 || c.paused || c.group.n >= c.max) {
		tx, g := c.tx, c.group
		c.tx, c.group = nil, nil
		c.committing = true
		c.slotFree.Broadcast() // waiters held back by a full group
		c.mu.Unlock()
		g.err = c.outcome(tx.Commit())
		if len(g.tokens) > 0 || g.clientsGone {
			c.committed(g.tokens, g.clientsGone)
		}
		close(g.done)
		c.mu.Lock()
		c.committing = false
		c.commits++
	}
	c.idle.Broadcast()
}
