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
}

// bucket returns the named top-level bucket for reading and writing.
func (w *wtx) bucket(name string) wbucket {
	return wbucket{b: bucket(w.tx, name), j: w.j}
}

// wbucket is a bucket whose Put and Delete are journaled.
type wbucket struct {
	b *bolt.Bucket
	j *journal
}

func (b wbucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b wbucket) Cursor() *bolt.Cursor                     { return b.b.Cursor() }
func (b wbucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b wbucket) Stats() bolt.BucketStats                  { return b.b.Stats() }
func (b wbucket) Put(k, v []byte) error                    { b.j.save(b.b, k); return b.b.Put(k, v) }
func (b wbucket) Delete(k []byte) error                    { b.j.save(b.b, k); return b.b.Delete(k) }

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
