package store_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpd/mcpd/store"
)

func TestBackup(t *testing.T) {
	ctx := context.Background()

	t.Run("a backup taken under write load opens as a consistent store with the data", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "before")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.PutConsent(ctx, store.Consent{User: fmt.Sprintf("u%d", i), ClientID: "before"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		var buf bytes.Buffer
		n, err := s.Backup(ctx, &buf)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(buf.Len()) || n == 0 {
			t.Errorf("Backup: reported %d bytes, wrote %d", n, buf.Len())
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mcpd.db"), buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		b := openTestDir(t, dir)
		if _, err := b.LookupClient(ctx, "before"); err != nil {
			t.Errorf("client in the backup: %v", err)
		}
	})

	t.Run("a backup file is 0600, complete, and replaces an older one", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		dir := t.TempDir()
		path := filepath.Join(dir, "mcpd.db")
		if err := os.WriteFile(path, []byte("old backup"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.BackupFile(ctx, path); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("backup mode: got %o; want 600", fi.Mode().Perm())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("backup directory holds %d files; want only the backup", len(entries))
		}
		b := openTestDir(t, dir)
		if _, err := b.LookupClient(ctx, "c1"); err != nil {
			t.Errorf("client in the backup: %v", err)
		}
	})

	t.Run("a backup into a missing directory fails and leaves nothing", func(t *testing.T) {
		s := openTest(t, nil)
		if err := s.BackupFile(ctx, filepath.Join(t.TempDir(), "no", "such", "dir", "b.db")); err == nil {
			t.Errorf("got nil; want an error")
		}
	})
}
