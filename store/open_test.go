package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
	bolt "go.etcd.io/bbolt"
)

func TestOpen(t *testing.T) {
	t.Run("creates the directory 0700 and the file 0600", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if got, want := s.Path(), filepath.Join(dir, "mcpd.db"); got != want {
			t.Errorf("Path: got %q; want %q", got, want)
		}
		for _, c := range []struct {
			path string
			mode os.FileMode
		}{{dir, 0o700}, {s.Path(), 0o600}} {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != c.mode {
				t.Errorf("%s: got mode %o; want %o", c.path, got, c.mode)
			}
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})

	t.Run("a second open fails with ErrLocked and says another mcpd holds it", func(t *testing.T) {
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		start := time.Now()
		_, err = store.Open(dir, &store.Options{LockTimeout: 200 * time.Millisecond})
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second Open: got %v; want ErrLocked", err)
		}
		if !strings.HasPrefix(err.Error(), "database is in use by another mcpd process (") {
			t.Errorf("second Open: got message %q; want it to start with %q", err, "database is in use by another mcpd process (")
		}
		if waited := time.Since(start); waited < 100*time.Millisecond { // bbolt gives up one 50ms retry early
			t.Errorf("second Open returned after %v; want it to wait the lock timeout", waited)
		}
	})

	t.Run("data survives close and reopen", func(t *testing.T) {
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		addClient(t, s, "c1")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = store.Open(dir, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if _, err := s.LookupClient(context.Background(), "c1"); err != nil {
			t.Errorf("LookupClient after reopen: %v", err)
		}
	})

	t.Run("a file written by a newer schema is refused", func(t *testing.T) {
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, err := bolt.Open(filepath.Join(dir, "mcpd.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			v := make([]byte, 8)
			v[7] = byte(store.SchemaVersion() + 1)
			return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), v)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Open(dir, nil); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("Open of a newer file: got %v; want a schema version error", err)
		}
	})

	t.Run("a file wider than 0600 is narrowed", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "mcpd.db")
		db, err := bolt.Open(path, 0o644, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("got mode %o; want 600", got)
		}
	})
}
