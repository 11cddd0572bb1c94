//go:build linux

package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
)

// mountTmpfs mounts a tmpfs of size on a fresh directory for the test.
// Only root can; CI runs the tests as root, so this test runs there.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; CI runs as root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}

// logRecorder keeps the messages logged at each level.
type logRecorder struct {
	mu   sync.Mutex
	msgs map[slog.Level][]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = map[slog.Level][]string{}
	}
	r.msgs[rec.Level] = append(r.msgs[rec.Level], rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) count(level slog.Level, substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs[level] {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// TestDiskFull puts the data directory on a 2 MiB tmpfs and fills it:
// writes fail with ErrUnavailable, logged once a minute, while reads go
// on; when space is freed, writes succeed again without a restart, the
// file passes bbolt's check and every acknowledged write is there.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, "2m")
	clk := newClock()
	logs := &logRecorder{}
	s, err := store.Open(filepath.Join(dir, "data"), &store.Options{Now: clk.Now, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addClient(t, s, "c1")
	filler := fill(t, dir)

	var acked []string
	var failed error
	for i := 0; i < 100000 && failed == nil; i++ {
		sig := fmt.Sprintf("sig-%d", i)
		if err := issueAccess(ctx, s, "c1", sig); err != nil {
			failed = err
			break
		}
		acked = append(acked, sig)
	}
	t.Logf("%d writes acknowledged before the disk filled", len(acked))
	if !errors.Is(failed, store.ErrUnavailable) || !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v; want ErrUnavailable wrapping ENOSPC", failed)
	}

	t.Run("writes keep failing, and the log says why once a minute", func(t *testing.T) {
		for i := range 20 {
			if err := issueAccess(ctx, s, "c1", fmt.Sprintf("more-%d", i)); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("write %d on a full disk: %v; want ErrUnavailable", i, err)
			}
		}
		if n := logs.count(slog.LevelError, "the disk is full"); n != 1 {
			t.Errorf("%d error lines about the full disk after 21 failed writes; want 1", n)
		}
		clk.Advance(61 * time.Second)
		issueAccess(ctx, s, "c1", "a-minute-later")
		if n := logs.count(slog.LevelError, "the disk is full"); n != 2 {
			t.Errorf("%d error lines a minute later; want 2", n)
		}
	})

	t.Run("health says writes fail and why", func(t *testing.T) {
		h := s.Health(ctx)
		if h.Writable || h.Reason != "the disk is full" || h.Since.IsZero() {
			t.Errorf("Health = %+v; want not writable, the disk is full", h)
		}
	})

	t.Run("acknowledged writes read back while the disk is full", func(t *testing.T) {
		for _, sig := range acked {
			if _, err := s.LookupAccessToken(ctx, sig); err != nil {
				t.Fatalf("token %s: %v", sig, err)
			}
		}
	})

	t.Run("after space is freed, health sees it and writes succeed without a restart", func(t *testing.T) {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
		if h := s.Health(ctx); !h.Writable {
			t.Errorf("Health after freeing space = %+v; want writable", h)
		}
		if n := logs.count(slog.LevelInfo, "writes succeed again"); n != 1 {
			t.Errorf("%d lines saying writes succeed again; want 1", n)
		}
		if err := issueAccess(ctx, s, "c1", "after"); err != nil {
			t.Fatalf("write after freeing space: %v", err)
		}
		acked = append(acked, "after")
	})

	t.Run("the file is whole and holds every acknowledged write, after a reopen too", func(t *testing.T) {
		if err := s.Check(); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := store.Open(filepath.Join(dir, "data"), &store.Options{Check: store.CheckFull})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		for _, sig := range acked {
			if _, err := s2.LookupAccessToken(ctx, sig); err != nil {
				t.Fatalf("token %s after reopening: %v", sig, err)
			}
		}
		s = s2
	})
}
