package store

import (
	"bytes"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxCachedClients bounds clientCache; past it the cache starts over.
const maxCachedClients = 4096

// clientCache keeps decoded client records for the token read path. An
// entry is used only while the stored record is byte for byte the one it
// was decoded from, so a changed or deleted client is never served stale.
// Every MCP request rebuilds its token's client, and decoding the client's
// JSON was a quarter of the bearer token check (docs/benchmarks.md).
type clientCache struct {
	mu sync.Mutex
	m  map[string]cachedClient
}

type cachedClient struct {
	raw    []byte // the record as stored
	client Client // decoded from raw; never handed out, only copies
}

// find returns client id as findClient does, decoding its record only when
// the cache holds no copy of these exact bytes. The caller owns the result.
func (c *clientCache) find(tx *bolt.Tx, id string) (*Client, error) {
	v := bucket(tx, bucketClients).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, v) {
		return e.client.clone(), nil
	}
	cl, err := decodeClient(v)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedClients {
		c.m = make(map[string]cachedClient)
	}
	c.m[id] = cachedClient{raw: bytes.Clone(v), client: *cl.clone()}
	c.mu.Unlock()
	return cl, nil
}

// clone copies c with slices of its own. A slice field added to Client must
// be cloned here too.
func (c *Client) clone() *Client {
	d := *c
	d.SecretHash = slices.Clone(c.SecretHash)
	d.RedirectURIs = slices.Clone(c.RedirectURIs)
	d.GrantTypes = slices.Clone(c.GrantTypes)
	d.ResponseTypes = slices.Clone(c.ResponseTypes)
	d.Scopes = slices.Clone(c.Scopes)
	d.Contacts = slices.Clone(c.Contacts)
	d.RegistrationTokenHash = slices.Clone(c.RegistrationTokenHash)
	return &d
}
