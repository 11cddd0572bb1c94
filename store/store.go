package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	// ErrNewerSchema is returned by Open for a file a newer mcpd wrote.
	ErrNewerSchema = errors.New("database was written by a newer mcpd")
)

// FileName is the name of the database file inside the data directory.
const FileName = "mcpd.db"

// Defaults of Options.
const (
	DefaultLockTimeout          = time.Second
	DefaultUnactivatedClientTTL = 24 * time.Hour
	DefaultKeepRotated          = 8
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
	// KeepRotated is how many rotated or revoked refresh tokens of a grant
	// are kept, newest first, as tombstones (with their grace-window
	// successors); default DefaultKeepRotated. Reuse of an older token is
	// recognised by the authorization server from the grant the token
	// names (authz/refresh_binding.go).
	KeepRotated int
	// Check is how thoroughly Open checks an existing file before bbolt
	// maps it; default CheckAuto.
	Check CheckMode
	// ReadOnly opens an existing file for reading only, under a shared
	// lock, without migrating it (for `mcpd doctor --data`); every write
	// fails.
	ReadOnly bool
}

// CheckMode is how thoroughly Open checks the file (Options.Check).
type CheckMode int

// Check modes. Every mode inspects the file first (Inspect): its meta
// pages, its size, and every page of its trees, with reads that cannot
// fault. CheckFull adds bbolt's own check of every page (key order, pages
// freed twice or lost), through a read-only handle closed before the file
// is opened for good.
const (
	CheckAuto  CheckMode = iota // CheckFull up to FullCheckLimit bytes, CheckQuick above
	CheckQuick                  // Inspect only
	CheckFull                   // Inspect and bbolt's check
)

// FullCheckLimit is the largest file CheckAuto checks fully: about a
// tenth of a second of bbolt's check.
const FullCheckLimit = 64 << 20

// Store is the bbolt-backed persistence of mcpd. It is safe for concurrent
// use.
type Store struct {
	// db is the open file; Compact replaces it while the store is in use,
	// so it is always read through db.Load().
	db          atomic.Pointer[bolt.DB]
	swap        sync.Mutex // held by Compact and Close
	path        string
	now         func() time.Time
	log         *slog.Logger
	lockTimeout time.Duration
	clientTT    time.Duration
	// keepRotated is Options.KeepRotated.
	keepRotated int
	gc          *committer  // every write goes through its group commit
	clients     clientCache // decoded clients for token lookups
	tokens      *tokenCache // access tokens LookupAccessToken read
	health      writeHealth // whether commits reach the disk
	locks       keyLocks    // LockKey
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
	if o.KeepRotated <= 0 {
		o.KeepRotated = DefaultKeepRotated
	}

	path := filepath.Join(dir, FileName)
	if !o.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, openError(dir, err)
		}
	}
	switch info, err := Inspect(path); {
	case errors.Is(err, fs.ErrNotExist) && !o.ReadOnly: // a new file
	case err != nil:
		return nil, err
	case o.Check == CheckFull, o.Check == CheckAuto && info.Bytes <= FullCheckLimit:
		if err := checkPages(path, o.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, &bolt.Options{Timeout: o.LockTimeout, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, err
	}
	// A file created by an older version or by hand may be wider than 0600.
	if !o.ReadOnly {
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, openError(path, err)
		}
	}
	s := &Store{
		path:        path,
		now:         o.Now,
		log:         o.Logger,
		lockTimeout: o.LockTimeout,
		clientTT:    o.UnactivatedClientTTL,
		keepRotated: o.KeepRotated,
		tokens:      &tokenCache{},
	}
	s.db.Store(db)
	s.gc = newCommitter(&s.db, o.MaxGroup, s.tokens.invalidate, s.commitOutcome)
	migrate := s.migrate
	if o.ReadOnly {
		migrate = s.checkSchema
	}
	if err := guard(path, migrate); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openBolt opens path with bbolt, turning a damaged file's panics and a
// held lock into the store's errors.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	err = guard(path, func() error {
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w (%s is locked; stop the running server or use its admin socket)", ErrLocked, path)
	case errors.Is(err, ErrDamaged):
		return nil, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, damaged(path, "%v", err)
	case err != nil:
		if oerr := openError(path, err); oerr != err {
			return nil, oerr
		}
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database file. It waits for open transactions.
func (s *Store) Close() error {
	s.swap.Lock()
	defer s.swap.Unlock()
	return s.db.Load().Close()
}

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
// problems found, or nil.
func (s *Store) Check() error {
	return s.view(context.Background(), func(tx *bolt.Tx) error {
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
