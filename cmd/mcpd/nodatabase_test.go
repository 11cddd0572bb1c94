package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// TestAdminCommandsNeedADatabase: an admin command run offline on a data
// directory without mcpd.db (the wrong directory, or a PostgreSQL
// deployment without --database) refuses in one sentence that says what
// to do, and leaves no file behind; `mcpd user add`, which sets up the
// first user of a new directory, creates it and says so.
func TestAdminCommandsNeedADatabase(t *testing.T) {
	commands := [][]string{
		{"user", "list"},
		{"user", "passwd", "alice", "--password-stdin"},
		{"user", "remove", "alice"},
		{"user", "email", "alice", "alice@example.com"},
		{"user", "unlink", "alice", "corp"},
		{"user", "passkeys", "alice"},
		{"client", "list", "--json"},
		{"client", "show", "c1"},
		{"client", "revoke", "c1"},
		{"consent", "list"},
		{"consent", "revoke", "alice", "c1"},
		{"backup", filepath.Join(t.TempDir(), "backup.db")},
		{"compact"},
		{"doctor"},
	}
	for _, where := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"a directory that does not exist", func(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }},
		{"an empty directory", func(t *testing.T) string { return t.TempDir() }},
	} {
		t.Run(where.name, func(t *testing.T) {
			for _, args := range commands {
				data := where.dir(t)
				path := filepath.Join(data, store.FileName)
				_, _, err := mcpd(t, "pw\n", append(args, "--data", data)...)
				want := "no database at " + path + " — start `mcpd serve` once, or pass --database for PostgreSQL"
				if err == nil || err.Error() != want || exitCode(err) != 1 {
					t.Errorf("mcpd %s: %v (exit %d); want exit 1: %s", strings.Join(args, " "), err, exitCode(err), want)
				}
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("mcpd %s left %s behind (stat: %v)", strings.Join(args, " "), path, err)
				}
			}
		})
	}

	t.Run("user add creates the database of a new directory, and serve takes it", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		out, errOut, err := mcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", data)
		if err != nil || out != "added user alice\n" {
			t.Fatalf("user add: %q, %v", out, err)
		}
		if !strings.Contains(errOut, "created a new database at "+filepath.Join(data, store.FileName)) {
			t.Errorf("user add said %q on stderr; want that it created the database", errOut)
		}
		if got := mustMcpd(t, "", "user", "list", "--data", data); !strings.Contains(got, "alice") {
			t.Errorf("user list after user add:\n%s", got)
		}
		_, errOut, _ = mcpd(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--data", data)
		if strings.Contains(errOut, "created") {
			t.Errorf("the second user add said %q; want nothing about creating", errOut)
		}
		ts := startServer(t, "--data", data)
		clientID, redirect := publicClient(t, ts.URL, "After user add")
		login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
	})

	t.Run("with --database the data directory needs no file and gets none", func(t *testing.T) {
		db := pgtest.URL(t)
		data := filepath.Join(t.TempDir(), "data")
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--database", db, "--data", data)
		if got := mustMcpd(t, "", "user", "list", "--database", db, "--data", data); !strings.Contains(got, "alice") {
			t.Errorf("user list --database:\n%s", got)
		}
		if _, err := os.Stat(filepath.Join(data, store.FileName)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a command with --database made a bbolt file (stat: %v)", err)
		}
	})
}
