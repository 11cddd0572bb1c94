package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpd/mcpd/store"
)

// Defaults of Options.
const (
	DefaultTokenCacheMaxAge = 500 * time.Millisecond
	// defaultMaxConns is the pool size when the URL sets no
	// pool_max_conns; the pool of LockKey has as many again.
	defaultMaxConns = 16
)

// Options configures a Store. A nil *Options means all defaults, which
// are what `mcpd serve` uses.
type Options struct {
	// Now is the clock of expiries; default time.Now.
	Now func() time.Time
	// Logger receives migration, janitor and listener messages; default
	// discards.
	Logger *slog.Logger
	// UnactivatedClientTTL is how long a dynamically registered client
	// that never completed an authorization is kept; default
	// store.DefaultUnactivatedClientTTL.
	UnactivatedClientTTL time.Duration
	// KeepRotated is how many rotated or revoked refresh tokens of a grant
	// are kept, newest first, as tombstones (with their grace-window
	// successors); default store.DefaultKeepRotated. The authorization
	// server recognises the reuse of an older one from the grant the token
	// names (authz/refresh_binding.go).
	KeepRotated int
	// NoTokenCache turns the access-token cache and its listener off, for
	// short-lived processes (the admin commands).
	NoTokenCache bool
	// TokenCacheMaxAge bounds how long LookupAccessToken answers from its
	// cache without reading the database; default
	// DefaultTokenCacheMaxAge. Revocations reach the cache sooner through
	// LISTEN/NOTIFY; the age bounds what a lost notification can cost.
	TokenCacheMaxAge time.Duration
}

// Store is mcpd's PostgreSQL backend. It is safe for concurrent use, by
// any number of processes on one database.
type Store struct {
	pool     *pgxpool.Pool // queries and transactions
	locks    *pgxpool.Pool // connections that hold LockKey's advisory locks
	now      func() time.Time
	log      *slog.Logger
	clientTT time.Duration
	keep     int         // Options.KeepRotated
	tokens   *tokenCache // nil with Options.NoTokenCache
	clients  clientDecoder
	tombs    lastReads // records of codes and refresh tokens, for their tombstones
	health   writeHealth

	stopListen context.CancelFunc
	listening  sync.WaitGroup
}

var _ store.Backend = (*Store)(nil)

// Open connects to the database at url (postgres://…; pgx's pool settings
// such as pool_max_conns may be given as URL parameters), brings its
// schema up to date under an advisory lock, so replicas starting at once
// do not race, and starts listening for the revocations other processes
// make.
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UnactivatedClientTTL <= 0 {
		o.UnactivatedClientTTL = store.DefaultUnactivatedClientTTL
	}
	if o.KeepRotated <= 0 {
		o.KeepRotated = store.DefaultKeepRotated
	}
	if o.TokenCacheMaxAge <= 0 {
		o.TokenCacheMaxAge = DefaultTokenCacheMaxAge
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s", redact(err.Error(), url))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	lockCfg := cfg.Copy()
	lockCfg.MinConns = 0
	s := &Store{
		now:      o.Now,
		log:      o.Logger,
		clientTT: o.UnactivatedClientTTL,
		keep:     o.KeepRotated,
	}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: %s", redact(err.Error(), url))
	}
	if s.locks, err = pgxpool.NewWithConfig(ctx, lockCfg); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: %s", redact(err.Error(), url))
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: connect: %s", redact(err.Error(), url))
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if !o.NoTokenCache {
		s.tokens = newTokenCache(o.TokenCacheMaxAge)
		s.listen(cfg.ConnConfig)
	}
	return s, nil
}

// Close stops the listener and closes the connections; it waits for
// connections in use to be given back.
func (s *Store) Close() error {
	if s.stopListen != nil {
		s.stopListen()
		s.listening.Wait()
	}
	if s.locks != nil {
		s.locks.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// Ping reports whether the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping: %w", s.fail(err))
	}
	return nil
}

// redact removes the password of url from a message that may quote it.
func redact(msg, url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				if pw := rest[colon+1 : at]; pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
				}
			}
		}
	}
	return msg
}

// textOK reports whether s can be stored in a text column: valid UTF-8
// without NUL bytes. Ids and names that are not cannot name a record, so
// lookups answer "not found" for them rather than a database error.
func textOK(s string) bool {
	return utf8.ValidString(s) && !strings.Contains(s, "\x00")
}

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// notFound maps pgx.ErrNoRows to err.
func notFound(got, err error) error {
	if errors.Is(got, pgx.ErrNoRows) {
		return err
	}
	return got
}
