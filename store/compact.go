package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// CompactStats is what Compact did to the file.
type CompactStats struct {
	Before int64 `json:"before_bytes"` // the file's size before
	After  int64 `json:"after_bytes"`  // and after
}

// compactTxSize is how much Compact copies per transaction of the new
// file, so that a large file is not copied in one transaction in memory.
const compactTxSize = 4 << 20

// Compact rewrites the database file with only its records, which gives
// back the free pages that rotated, revoked and expired records left: a
// file grows to hold its largest moment and never shrinks by itself.
//
// It is safe while the store serves. Writers wait while the records are
// copied (the copy takes time in proportion to the live records, not to
// the file); readers go on, on the old file until the new one replaces it.
// The copy is written beside the file, synced, checked, and renamed over
// it, so the path holds either the old file or the whole new one; readers
// still in the old file finish there before it is closed.
func (s *Store) Compact(ctx context.Context) (CompactStats, error) {
	s.swap.Lock()
	defer s.swap.Unlock()
	var st CompactStats
	if fi, err := os.Stat(s.path); err == nil {
		st.Before = fi.Size()
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}

	s.gc.pause()
	paused := true
	defer func() {
		if paused {
			s.gc.resume()
		}
	}()
	old := s.db.Load()
	tmp, err := s.compactInto(old)
	if err != nil {
		return st, fmt.Errorf("compact: %w", err)
	}
	next, err := openBolt(tmp, &bolt.Options{Timeout: s.lockTimeout})
	if err != nil {
		os.Remove(tmp)
		return st, fmt.Errorf("compact: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		next.Close()
		os.Remove(tmp)
		return st, fmt.Errorf("compact: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		// The new file is in place; only the rename's durability is in
		// doubt, and the old file, still whole, would come back with it.
		s.log.Warn("store: compact: syncing the data directory failed", "err", err)
	}
	s.db.Store(next)
	s.tokens.invalidate(nil, true)
	s.gc.resume()
	paused = false
	// Readers that loaded the old file finish in it: Close waits for them.
	if err := old.Close(); err != nil {
		s.log.Warn("store: compact: closing the old file failed", "err", err)
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.After = fi.Size()
	}
	s.log.Info("store: compacted", "before_bytes", st.Before, "after_bytes", st.After)
	return st, nil
}

// compactInto copies every record of src into a new file beside the
// store's, syncs and checks it, and returns its path.
func (s *Store) compactInto(src *bolt.DB) (path string, err error) {
	f, err := os.CreateTemp(filepath.Dir(s.path), "."+FileName+".compact-*")
	if err != nil {
		return "", err
	}
	path = f.Name()
	f.Close() // bbolt makes a database of an empty file
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: s.lockTimeout, NoSync: true})
	if err != nil {
		return path, err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	if err := bolt.Compact(dst, src, compactTxSize); err != nil {
		return path, err
	}
	if err := dst.Sync(); err != nil {
		return path, err
	}
	return path, dst.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("the compacted copy fails its check: %w", err)
		}
		return nil
	})
}
