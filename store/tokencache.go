package store

import (
	"slices"
	"sync"
)

// maxCachedTokens bounds tokenCache; past it the cache starts over.
const maxCachedTokens = 4096

// tokenCache keeps what LookupAccessToken read from committed access-token
// records, so a bearer token that is used again is checked without a
// bbolt read transaction. It is not a time-based cache: this process is
// the database's only writer (bbolt's file lock), and every commit that
// changed an access-token record or deleted a client invalidates it before
// the writers in that commit return. A revocation therefore takes effect
// on the next lookup, as without the cache.
//
// A lookup that misses reads the committed state; a commit may land
// between that read and the lookup's insert. The generation counter,
// which every invalidation advances, keeps such a read out of the cache.
type tokenCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]AccessTokenInfo

	afterRead func() // tests: runs between a missed lookup's read and its put
}

// get returns the cached info of key (a token's sighash) and the
// generation to hand put after a miss.
func (c *tokenCache) get(key []byte) (info AccessTokenInfo, ok bool, gen uint64) {
	c.mu.Lock()
	info, ok = c.m[string(key)]
	gen = c.gen
	c.mu.Unlock()
	return info, ok, gen
}

// put caches info under key unless an invalidation happened since get
// returned gen.
func (c *tokenCache) put(key []byte, info AccessTokenInfo, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedTokens {
		c.m = make(map[string]AccessTokenInfo)
	}
	c.m[string(key)] = info
}

// invalidate drops the given keys, or everything when all is set, and
// fails every put whose read may predate the commit.
func (c *tokenCache) invalidate(keys [][]byte, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if all {
		clear(c.m)
		return
	}
	for _, k := range keys {
		delete(c.m, string(k))
	}
}

// clone copies info with slices of its own, so no caller can change what
// the cache holds.
func (info AccessTokenInfo) clone() AccessTokenInfo {
	info.GrantedScopes = slices.Clone(info.GrantedScopes)
	info.GrantedAudience = slices.Clone(info.GrantedAudience)
	return info
}
