package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"github.com/mcpd/mcpd/store"
)

// maxCachedTokens bounds tokenCache; past it the cache starts over.
const maxCachedTokens = 4096

// tokenChannel is the NOTIFY channel of revocations: its payload is the
// comma-separated hex SHA-256 keys of the access tokens that went, or "*"
// for "drop everything" (a client went, or too many keys for one
// notification).
const tokenChannel = "mcpd_token_cache"

// listenerApplicationName names the listener's connection in
// pg_stat_activity.
const listenerApplicationName = "mcpd listener"

// maxNotifyKeys is the most keys one notification carries (PostgreSQL
// caps a payload below 8000 bytes; a key is 64 hex digits and a comma).
const maxNotifyKeys = 100

// tokenCache keeps what LookupAccessToken read from committed access-token
// records, so a bearer token used again is checked without a query. Other
// processes write the same database, so an entry is trusted only while
//   - this process listens for their revocations (LISTEN on tokenChannel):
//     the cache is empty and off until the listener is connected, and is
//     emptied and turned off whenever the connection fails; and
//   - it is younger than maxAge, which bounds what a notification lost in
//     a failing connection, or a rotation (which notifies nobody), can
//     cost: a token retired elsewhere is refused here within maxAge.
//
// This process's own writes drop what they changed when they commit, as
// in the bbolt store. The generation counter keeps a lookup that read the
// database before an invalidation from caching what it read after it.
type tokenCache struct {
	maxAge time.Duration

	mu      sync.Mutex
	on      bool
	gen     uint64
	m       map[string]cachedToken
	elapsed func() time.Duration // monotonic time, for ages
}

type cachedToken struct {
	info store.AccessTokenInfo
	at   time.Duration
}

func newTokenCache(maxAge time.Duration) *tokenCache {
	start := time.Now()
	return &tokenCache{maxAge: maxAge, elapsed: func() time.Duration { return time.Since(start) }}
}

// get returns the cached info of key and the generation to hand put after
// a miss.
func (c *tokenCache) get(key []byte) (store.AccessTokenInfo, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(key)]
	if ok && c.elapsed()-e.at > c.maxAge {
		delete(c.m, string(key))
		ok = false
	}
	return e.info, ok, c.gen
}

// put caches info under key unless the cache is off or an invalidation
// happened since get returned gen.
func (c *tokenCache) put(key []byte, info store.AccessTokenInfo, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedTokens {
		c.m = make(map[string]cachedToken)
	}
	c.m[string(key)] = cachedToken{info: info, at: c.elapsed()}
}

// invalidate drops the given keys, or everything when all is set, and
// fails every put whose read may predate the change.
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

// setOn empties the cache and turns it on or off.
func (c *tokenCache) setOn(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
	c.on = on
}

// isOn reports whether the cache is on, for tests.
func (c *tokenCache) isOn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on
}

// listen starts the listener of tokenChannel: pgxlisten keeps a
// connection of its own, reconnecting after failures, and turns the cache
// on once it listens (HandleBacklog) and off on any failure (LogError).
func (s *Store) listen(cfg *pgx.ConnConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	var logged time.Time // the listener's goroutine alone calls LogError
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			c := cfg.Copy()
			c.RuntimeParams["application_name"] = listenerApplicationName
			return pgx.ConnectConfig(ctx, c)
		},
		LogError: func(ctx context.Context, err error) {
			s.tokens.setOn(false)
			// It tries again every ReconnectDelay: one line a minute
			// says it while the database is away.
			if now := time.Now(); ctx.Err() == nil && (logged.IsZero() || now.Sub(logged) >= healthLogInterval) {
				logged = now
				s.log.Warn("store: token cache off: not listening for revocations", "err", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(tokenChannel, cacheListener{s.tokens})
	s.listening.Add(1)
	go func() {
		defer s.listening.Done()
		err := l.Listen(ctx)
		s.tokens.setOn(false)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("store: listener stopped", "err", err)
		}
	}()
}

// cacheListener applies notifications of tokenChannel to the cache.
type cacheListener struct{ c *tokenCache }

// HandleBacklog runs each time LISTEN is in place: what was revoked while
// nobody listened is unknown, so the cache starts empty.
func (h cacheListener) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.c.setOn(true)
	return nil
}

func (h cacheListener) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	if n.Payload == "*" {
		h.c.invalidate(nil, true)
		return nil
	}
	var keys [][]byte
	for _, k := range strings.Split(n.Payload, ",") {
		b, err := hex.DecodeString(k)
		if err != nil {
			h.c.invalidate(nil, true)
			return nil
		}
		keys = append(keys, b)
	}
	h.c.invalidate(keys, false)
	return nil
}

// notifyGone tells every process that the access tokens of keys went (all:
// that every cached token must go), in ctx's transaction if it has one, so
// the notification is delivered when it commits.
func (s *Store) notifyGone(ctx context.Context, keys [][]byte, all bool) error {
	if len(keys) == 0 && !all {
		return nil
	}
	payload := "*"
	if !all && len(keys) <= maxNotifyKeys {
		hexKeys := make([]string, len(keys))
		for i, k := range keys {
			hexKeys[i] = hex.EncodeToString(k)
		}
		payload = strings.Join(hexKeys, ",")
	}
	if err := s.deferExec(ctx, "SELECT pg_notify($1, $2)", tokenChannel, payload); err != nil {
		return err
	}
	s.changedTokens(ctx, changed{keys: keys, all: all})
	return nil
}
