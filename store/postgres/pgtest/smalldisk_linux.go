package pgtest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SmallDisk moves tables of dbURL's schema (a URL from URL or Role), with
// their indexes, onto a tablespace on a tmpfs of size bytes, so that a
// test can fill it (SQLSTATE 53100, disk_full) and free room by removing
// the file at the returned path, which takes spare of those bytes. When
// the test ends the tables move back and the tmpfs goes. It needs root
// (to mount) and the test server on this machine (MCPD_TEST_PGDIR, which
// scripts/pgcluster.sh exports); without them the test is skipped.
func SmallDisk(t testing.TB, dbURL string, size, spare int, tables ...string) string {
	t.Helper()
	pgdir := os.Getenv("MCPD_TEST_PGDIR")
	if os.Geteuid() != 0 || pgdir == "" {
		t.Skip("a full disk under PostgreSQL needs root (to mount a tmpfs) and the test server on this machine (MCPD_TEST_PGDIR); CI has both")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(pgdir, "data"), &st); err != nil {
		t.Fatalf("pgtest: the test server's data directory: %v", err)
	}
	dir, err := os.MkdirTemp("", "mcpd-pgdisk-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // the server's user must reach the tablespace
	opts := "size=" + strconv.Itoa(size) + ",mode=0700,uid=" + strconv.Itoa(int(st.Uid)) + ",gid=" + strconv.Itoa(int(st.Gid))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("pgtest: mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("pgtest: unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	sparePath := filepath.Join(dir, "spare")
	if err := os.WriteFile(sparePath, make([]byte, spare), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	space := "small_" + schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := os.Getenv(EnvVar)
	exec(t, ctx, base, "CREATE TABLESPACE "+space+" LOCATION '"+dir+"'")
	move := func(ctx context.Context, to string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		for _, table := range tables {
			if _, err := conn.Exec(ctx, "ALTER TABLE "+schema+"."+table+" SET TABLESPACE "+to); err != nil {
				return err
			}
			rows, err := conn.Query(ctx, "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2", schema, table)
			if err != nil {
				return err
			}
			indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, ix := range indexes {
				if _, err := conn.Exec(ctx, "ALTER INDEX "+schema+"."+ix+" SET TABLESPACE "+to); err != nil {
					return err
				}
			}
		}
		return nil
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := move(ctx, "pg_default"); err != nil {
			t.Errorf("pgtest: move the tables back: %v", err)
		}
		exec(t, ctx, base, "DROP TABLESPACE "+space)
	})
	if err := move(ctx, space); err != nil {
		t.Fatalf("pgtest: move tables onto the small disk: %v", err)
	}
	return sparePath
}
