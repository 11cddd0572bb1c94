package postgres

import (
	"sync"

	"github.com/mcpd/mcpd/store"
)

// maxDecodedClients bounds clientDecoder; past it, it starts over.
const maxDecodedClients = 1024

// clientDecoder keeps decoded clients by the exact bytes of their stored
// JSON, so the token endpoint, which reads a client three times per
// request, decodes it once. It holds no state of the database: an entry is
// used only for the very bytes it was decoded from, so an updated or
// deleted client is never served stale, by this replica or another.
type clientDecoder struct {
	mu sync.Mutex
	m  map[string]*store.Client // raw JSON → decoded; never handed out, only copies
}

// decode returns the client stored as raw; the caller owns the result.
func (d *clientDecoder) decode(raw []byte) (*store.Client, error) {
	d.mu.Lock()
	c, ok := d.m[string(raw)]
	d.mu.Unlock()
	if ok {
		return c.Clone(), nil
	}
	c, err := store.DecodeClient(raw)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.m == nil || len(d.m) >= maxDecodedClients {
		d.m = make(map[string]*store.Client)
	}
	d.m[string(raw)] = c.Clone()
	d.mu.Unlock()
	return c, nil
}
