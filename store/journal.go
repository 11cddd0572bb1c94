package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// wtx is the writable transaction a write runs in: bbolt's transaction,
// shared with the writers of the same group commit, and the journal that
// lets this writer undo its own changes. Writes go through wtx.bucket so
// the journal sees them; reads may use tx directly.
type wtx struct {
	tx *bolt.Tx
	j  *journal // nil when no other writer's changes are in tx
	changed
}

// changed is what a commit must invalidate in the token cache: the keys of
// the access-token records written, or everything once a client is gone.
type changed struct {
	tokens      [][]byte
	clientsGone bool
}

func (c *changed) add(o changed) {
	c.tokens = append(c.tokens, o.tokens...)
	c.clientsGone = c.clientsGone || o.clientsGone
}

// bucket returns the named top-level bucket for reading and writing.
func (w *wtx) bucket(name string) wbucket {
	return wbucket{b: bucket(w.tx, name), w: w, name: name}
}

// wbucket is a bucket whose Put and Delete are journaled and noted for the
// token cache.
type wbucket struct {
	b    *bolt.Bucket
	w    *wtx
	name string
}

func (b wbucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b wbucket) Cursor() *bolt.Cursor                     { return b.b.Cursor() }
func (b wbucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b wbucket) Stats() bolt.BucketStats                  { return b.b.Stats() }

// Put sets k to v.
func (b wbucket) Put(k, v []byte) error {
	b.w.j.save(b.b, k)
	b.note(k, false)
	return b.b.Put(k, v)
}

// Delete removes k.
func (b wbucket) Delete(k []byte) error {
	b.w.j.save(b.b, k)
	b.note(k, true)
	return b.b.Delete(k)
}

func (b wbucket) note(k []byte, deleted bool) {
	switch {
	case b.name == bucketAccess:
		b.w.changed.tokens = append(b.w.changed.tokens, bytes.Clone(k))
	case b.name == bucketClients && deleted:
		b.w.changed.clientsGone = true
	}
}

// ensure adds k with an empty value unless k is there already (an index
// entry), so a page is rewritten only when the entry is new.
func (b wbucket) ensure(k []byte) error {
	if has(b.b, k) {
		return nil
	}
	return b.Put(k, nil)
}

// has reports whether b holds key k. Get cannot tell a missing key from one
// with an empty value, so it looks k up with a cursor.
func has(b *bolt.Bucket, k []byte) bool {
	ck, _ := b.Cursor().Seek(k)
	return ck != nil && bytes.Equal(ck, k)
}

// journal is the undo log of one writer in a shared transaction: for each
// key it changed, in order, what the key held before.
type journal struct {
	entries []undoEntry
}

type undoEntry struct {
	b       *bolt.Bucket
	key     []byte
	old     []byte
	existed bool
}

// save records what k holds in b before it changes. A nil journal records
// nothing.
func (j *journal) save(b *bolt.Bucket, k []byte) {
	if j == nil {
		return
	}
	// Get cannot tell a missing key from one with an empty value (index
	// entries have one), so look the key up with a cursor.
	ck, v := b.Cursor().Seek(k)
	e := undoEntry{b: b, key: bytes.Clone(k)}
	if ck != nil && bytes.Equal(ck, k) {
		e.existed = true
		e.old = bytes.Clone(v)
	}
	j.entries = append(j.entries, e)
}

// undo restores every recorded key, newest change first.
func (j *journal) undo() error {
	for i := len(j.entries) - 1; i >= 0; i-- {
		e := j.entries[i]
		var err error
		if e.existed {
			err = e.b.Put(e.key, e.old)
		} else {
			err = e.b.Delete(e.key)
		}
		if err != nil {
			return err
		}
	}
	j.entries = nil
	return nil
}
