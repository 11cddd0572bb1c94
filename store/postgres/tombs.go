package postgres

import (
	"sync"

	"github.com/mcpd/mcpd/store"
)

// maxRememberedRecords bounds lastReads; past it, it starts over.
const maxRememberedRecords = 1024

// lastReads keeps the record of each active code and refresh token this
// process read last, so that using the code or rotating the token writes
// its tombstone (store.Tombstone) in the statement that retires it, not in
// a second one: the token endpoint reads a token just before it rotates
// it. What a tombstone keeps (grant, client, subject, expiry, session
// extra claims) never changes while the record is active, and the
// statement that uses a remembered record retires it only if it is still
// active, with the same grant; a record not remembered is buried by a
// second statement.
type lastReads struct {
	mu sync.Mutex
	m  map[string]lastRead
}

type lastRead struct {
	requestID string
	data      []byte // the record's JSON, as read
}

func recordKey(kind string, key []byte) string { return kind + string(key) }

// remember notes the record of an active code or refresh token.
func (r *lastReads) remember(kind string, key []byte, requestID string, data []byte) {
	if kind != kindCode && kind != kindRefresh {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= maxRememberedRecords {
		r.m = make(map[string]lastRead)
	}
	r.m[recordKey(kind, key)] = lastRead{requestID: requestID, data: data}
}

// forget drops what is remembered of a record this process wrote or
// deleted.
func (r *lastReads) forget(kind string, key []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, recordKey(kind, key))
}

// take returns the tombstone of the remembered record, and forgets it;
// nil when none is remembered, or it is of another grant than requestID
// ("": any).
func (r *lastReads) take(kind string, key []byte, requestID string) []byte {
	r.mu.Lock()
	rec, ok := r.m[recordKey(kind, key)]
	delete(r.m, recordKey(kind, key))
	r.mu.Unlock()
	if !ok || (requestID != "" && rec.requestID != requestID) {
		return nil
	}
	tomb, err := store.Tombstone(rec.data)
	if err != nil {
		return nil // the second statement buries it
	}
	return tomb
}
