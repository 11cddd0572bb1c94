package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors of the store's own records. The fosite contracts return
// fosite's errors instead (fosite.ErrNotFound and friends).
var (
	ErrNotFound       = errors.New("not found")
	ErrAlreadyExists  = errors.New("already exists")
	ErrBadCredentials = errors.New("bad credentials")
	// ErrLocked is returned by Open when another process holds the database.
	ErrLocked = errors.New("database is in use by another mcpd process")
)

// FileName is the name of the database file inside the data directory.
const FileName = "mcpd.db"

// Defaults of Options.
const (
	DefaultLockTimeout          = time.Second
	DefaultUnactivatedClientTTL = 24 * time.Hour
)

// Options configures a Store. A nil *Options means all defaults.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives janitor and migration messages; default discards.
	Logger *slog.Logger
	// LockTimeout is how long Open waits for the exclusive file lock;
	// default 1s.
	LockTimeout time.Duration
	// UnactivatedClientTTL is how long a dynamically registered client that
	// never completed an authorization is kept; default 24h.
	UnactivatedClientTTL time.Duration
	// MaxGroup is the most writes (transactions and writes outside one)
	// that share one commit; default DefaultMaxGroup. Writes share a commit
	// only when they overlap: a write alone commits at once, and no write
	// ever waits on a timer. 1 makes every write commit on its own.
	MaxGroup int
}

// Store is the bbolt-backed persistence of mcpd. It is safe for concurrent
// use.
type Store struct {
	db       *bolt.DB
	path     string
	now      func() time.Time
	log      *slog.Logger
	clientTT time.Duration
	gc       *committer  // every write goes through its group commit
	clients  clientCache // decoded clients for token lookups
	tokens   *tokenCache // access tokens LookupAccessToken read
	locks    keyLocks    // LockKey
}

// Open opens (creating if needed) DIR/mcpd.db, with the directory mode 0700
// and the file mode 0600, creates the buckets and migrates the schema. When
// another process holds the file, Open fails after Options.LockTimeout with
// an error that wraps ErrLocked.
func Open(dir string, opts *Options) (*Store, error) {
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
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.UnactivatedClientTTL <= 0 {
		o.UnactivatedClientTTL = DefaultUnactivatedClientTTL
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = DefaultMaxGroup
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s is locked; stop the running server or use its admin socket)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// A file created by an older version or by hand may be wider than 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("restrict database file mode: %w", err)
	}
	s := &Store{
		db:       db,
		path:     path,
		now:      o.Now,
		log:      o.Logger,
		clientTT: o.UnactivatedClientTTL,
		tokens:   &tokenCache{},
	}
	s.gc = newCommitter(db, o.MaxGroup, s.tokens.invalidate)
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database file. It waits for open transactions.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the path of the database file.
func (s *Store) Path() string { return s.path }

// Ping reports whether the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.view(ctx, func(tx *bolt.Tx) error {
		if bucket(tx, bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
}

// Check runs bbolt's consistency check over the whole file and returns the
// first problem found, or nil.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Backup writes a consistent copy of the database to w while the store
// stays in use, and returns the number of bytes written.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile writes a consistent copy of the database to path (mode 0600),
// through a temporary file in the same directory renamed into place, so
// path is either the old file or a complete new copy.
func (s *Store) BackupFile(ctx context.Context, path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := s.Backup(ctx, f); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync directory: %w", err)
	}
	return nil
}
