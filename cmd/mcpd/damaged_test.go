package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpd/mcpd/store"
)

// writtenDatabase makes a data directory whose database holds users,
// clients and notes, as a server that ran a while leaves it.
func writtenDatabase(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	s, err := store.Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateUser(ctx, "admin", "admin-pw"); err != nil {
		t.Fatal(err)
	}
	for i := range 80 {
		if _, err := s.SaveNote(ctx, "admin", store.Note{Title: "note", Body: strings.Repeat("words ", 30+i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// usedPage returns the number of the first leaf page in use.
func usedPage(t *testing.T, path string) (page int64, size int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for i := 2; ; i++ {
			p, err := tx.Page(i)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == "leaf" {
				page = int64(i)
				return nil
			}
		}
	})
	if page == 0 {
		t.Fatal("no leaf page in use")
	}
	return page, db.Info().PageSize
}

// runBinary runs the mcpd binary with args and returns its stderr and
// exit code; it fails the test if mcpd runs longer than 20 seconds.
func runBinary(t *testing.T, bin string, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=admin-pw")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mcpd %s did not end: %s", strings.Join(args, " "), errb.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// wantRefusal checks that a command ended with exit code 1 and one line
// on stderr holding every want, and no crash.
func wantRefusal(t *testing.T, what, stderr string, code int, want ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("%s: exit code %d; want 1\n%s", what, code, stderr)
	}
	for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "SIGSEGV", "fatal error"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("%s crashed (%q):\n%s", what, bad, stderr)
		}
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
		t.Errorf("%s: %d lines on stderr; want one sentence:\n%s", what, lines, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr %q does not say %q", what, stderr, w)
		}
	}
}

// TestDamagedDatabaseRefused runs the real binary on damaged databases:
// serve, an admin command and doctor --data each end with one sentence
// naming the file and the way out (the backup), never a panic or SIGBUS.
func TestDamagedDatabaseRefused(t *testing.T) {
	bin := mcpdBinary(t)
	damages := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated to 10,000 bytes", func(t *testing.T, path string) { os.Truncate(path, 10000) }},
		{"500 bytes flipped in a page in use", func(t *testing.T, path string) {
			page, size := usedPage(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 500)
			if _, err := f.ReadAt(b, page*int64(size)+8); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(500, 2))
			for i := range b {
				b[i] ^= byte(r.Uint32()) | 1
			}
			if _, err := f.WriteAt(b, page*int64(size)+8); err != nil {
				t.Fatal(err)
			}
		}},
		{"zero-length", func(t *testing.T, path string) { os.Truncate(path, 0) }},
		{"not a bbolt file at all", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("<html>not a database</html>\n"), 1000), 0o600)
		}},
	}
	for _, d := range damages {
		t.Run("a database "+d.name+" is refused with one sentence and the way out", func(t *testing.T) {
			data := writtenDatabase(t)
			path := filepath.Join(data, store.FileName)
			d.damage(t, path)
			_, stderr, code := runBinary(t, bin, nil, "serve", "--listen", "127.0.0.1:0", "--data", data)
			wantRefusal(t, "serve", stderr, code, path, "is damaged", "mcpd backup")
			_, stderr, code = runBinary(t, bin, nil, "user", "list", "--data", data)
			wantRefusal(t, "user list", stderr, code, path, "is damaged", "mcpd backup")
			stdout, stderr, code := runBinary(t, bin, nil, "doctor", "--data", data)
			wantRefusal(t, "doctor --data", stderr, code, "checks of "+path+" failed")
			if !strings.Contains(stdout, "FAIL every page") {
				t.Errorf("doctor --data printed:\n%s\nwant a failed page check", stdout)
			}
		})
	}

	t.Run("doctor --data passes a whole database and says what it holds", func(t *testing.T) {
		data := writtenDatabase(t)
		stdout, stderr, code := runBinary(t, bin, nil, "doctor", "--data", data)
		if code != 0 {
			t.Fatalf("doctor --data: exit %d\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{"ok   every page", "ok   bbolt's consistency check", "schema version", "notes", "mcpd compact"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("doctor --data output lacks %q:\n%s", want, stdout)
			}
		}
	})
}

// TestUnusableDataDirectoryRefused: a data directory on a read-only mount,
// or owned by another user, stops serve and the admin commands with one
// sentence that says what is wrong and what to do.
func TestUnusableDataDirectoryRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount read-only and to run mcpd as another user; CI runs as root")
	}
	bin := mcpdBinary(t)

	t.Run("a read-only data directory", func(t *testing.T) {
		data := mountTmpfs(t, "4m")
		src := writtenDatabase(t)
		raw, err := os.ReadFile(filepath.Join(src, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, store.FileName), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("", data, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		_, stderr, code := runBinary(t, bin, nil, "serve", "--listen", "127.0.0.1:0", "--data", data)
		wantRefusal(t, "serve", stderr, code, "read-only", "writable data directory")
		_, stderr, code = runBinary(t, bin, nil, "user", "list", "--data", data)
		wantRefusal(t, "user list", stderr, code, "read-only", "writable data directory")
	})

	t.Run("a data directory owned by another user", func(t *testing.T) {
		// The binary and the directory above the data directory must be
		// reachable by nobody; only the data directory is not.
		top, err := os.MkdirTemp("", "mcpd-owner-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(top) })
		if err := os.Chmod(top, 0o755); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		nbin := filepath.Join(top, "mcpd")
		if err := os.WriteFile(nbin, raw, 0o755); err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(top, "data")
		src := writtenDatabase(t)
		if err := os.Rename(src, data); err != nil {
			t.Fatal(err)
		}
		nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
		_, stderr, code := runBinary(t, nbin, nobody, "serve", "--listen", "127.0.0.1:0", "--data", data)
		wantRefusal(t, "serve", stderr, code, "permission denied", data+" belongs to uid 0", "runs as uid 65534", "chown")
		_, stderr, code = runBinary(t, nbin, nobody, "client", "list", "--data", data)
		wantRefusal(t, "client list", stderr, code, "permission denied", "chown")
	})
}

// mountTmpfs mounts a tmpfs of size on a fresh directory for the test
// (root only).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
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
