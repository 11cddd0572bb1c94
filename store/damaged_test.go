package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpd/mcpd/store"
)

// goodFile writes a database with some records, closed, and returns its
// directory, path and layout.
func goodFile(t *testing.T) (dir, path string, info store.FileInfo) {
	t.Helper()
	dir = t.TempDir()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	addClient(t, s, "c1")
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(context.Background(), u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	// Enough notes that the notes bucket has pages of its own.
	for i := range 60 {
		if _, err := s.SaveNote(context.Background(), "alice", store.Note{Title: fmt.Sprintf("note %d", i), Body: strings.Repeat("body ", 40)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, store.FileName)
	info, err = store.Inspect(path)
	if err != nil {
		t.Fatalf("Inspect of a good file: %v", err)
	}
	return dir, path, info
}

// patch overwrites the file at off with b.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFileRefused(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, info store.FileInfo)
		reason string // in the message
	}{
		{"a file truncated to 10,000 bytes", func(t *testing.T, path string, _ store.FileInfo) {
			os.Truncate(path, 10000)
		}, "truncated"},
		{"a file truncated by one page", func(t *testing.T, path string, info store.FileInfo) {
			os.Truncate(path, int64(info.Pages-1)*int64(info.PageSize))
		}, "truncated"},
		{"a zero-length file", func(t *testing.T, path string, _ store.FileInfo) {
			os.Truncate(path, 0)
		}, "empty"},
		{"a file of 100 bytes", func(t *testing.T, path string, _ store.FileInfo) {
			os.Truncate(path, 100)
		}, "truncated"},
		{"a file that is not bbolt at all", func(t *testing.T, path string, _ store.FileInfo) {
			os.WriteFile(path, bytes.Repeat([]byte("SQLite format 3\x00 this is no bbolt file\n"), 500), 0o600)
		}, "not a bbolt database"},
		{"500 random bytes in a leaf page in use", func(t *testing.T, path string, info store.FileInfo) {
			patch(t, path, pageOf(t, path, "leaf")*int64(info.PageSize)+8, junk(500))
		}, "page"},
		{"500 random bytes in a branch page in use", func(t *testing.T, path string, info store.FileInfo) {
			patch(t, path, pageOf(t, path, "branch")*int64(info.PageSize)+8, junk(500))
		}, "page"},
		{"both meta pages corrupt", func(t *testing.T, path string, info store.FileInfo) {
			patch(t, path, 16+40, []byte{1, 2, 3})
			patch(t, path, int64(info.PageSize)+16+40, []byte{1, 2, 3})
		}, "both of its meta pages are corrupt"},
		{"a root page that is not a tree page", func(t *testing.T, path string, info store.FileInfo) {
			patch(t, path, int64(info.RootPage)*int64(info.PageSize)+8, []byte{0x04, 0})
		}, "root page"},
		{"a freelist that lists pages outside the file", func(t *testing.T, path string, info store.FileInfo) {
			off := int64(info.FreelistPage) * int64(info.PageSize)
			patch(t, path, off+10, []byte{1, 0}) // one entry…
			patch(t, path, off+16, binary.NativeEndian.AppendUint64(nil, 1<<40))
		}, "freelist"},
		{"a root page whose element count runs past the file", func(t *testing.T, path string, info store.FileInfo) {
			patch(t, path, int64(info.RootPage)*int64(info.PageSize)+10, []byte{0xff, 0xff})
		}, "65535 elements"},
		{"a directory where the file should be", func(t *testing.T, path string, _ store.FileInfo) {
			os.Remove(path)
			os.Mkdir(path, 0o700)
		}, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused with the way out", func(t *testing.T) {
			dir, path, info := goodFile(t)
			c.damage(t, path, info)
			before, _ := os.ReadFile(path)
			s, err := store.Open(dir, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged file succeeded")
			}
			if !errors.Is(err, store.ErrDamaged) {
				t.Fatalf("Open: %v; want ErrDamaged", err)
			}
			msg := err.Error()
			for _, want := range []string{path, "is damaged", c.reason, "restore the last backup", "mcpd backup"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("message %q is more than one line", msg)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused file was changed")
			}
		})
	}
}

// A crash in the middle of a commit can leave one meta page invalid;
// bbolt then uses the other one, and so does Open.
func TestOneDamagedMetaPageStillOpens(t *testing.T) {
	dir, path, info := goodFile(t)
	meta := int64(info.TxID%2) * int64(info.PageSize) // the newer meta page
	patch(t, path, meta+16+48, []byte{0xde, 0xad})
	got, err := store.Inspect(path)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if !got.OneMetaDamaged || got.TxID != info.TxID-1 {
		t.Errorf("Inspect: %+v; want one damaged meta page and the previous transaction %d", got, info.TxID-1)
	}
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestUnwritableDataDirectoryRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes where permissions say no; cmd/mcpd tests this as another user and on a read-only mount")
	}
	dir, path, _ := goodFile(t)
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(dir, nil)
	if !errors.Is(err, store.ErrUnwritable) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Open of a read-only file: %v; want ErrUnwritable saying permission denied", err)
	}
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(parent, 0o700)
	_, err = store.Open(filepath.Join(parent, "data"), nil)
	if !errors.Is(err, store.ErrUnwritable) {
		t.Errorf("Open in a read-only directory: %v; want ErrUnwritable", err)
	}
}

// junk is n bytes of a fixed pseudo-random sequence.
func junk(n int) []byte {
	r := rand.New(rand.NewPCG(17, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// pageOf returns the first page of the given type ("leaf", "branch" or
// "free") other than the root bucket's page.
func pageOf(t *testing.T, path, typ string) int64 {
	t.Helper()
	info, err := store.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil) // read-only, bbolt would not load the freelist
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	found := int64(-1)
	db.View(func(tx *bolt.Tx) error {
		for i := 2; i < int(info.Pages) && found < 0; i++ {
			if p, err := tx.Page(i); err == nil && p != nil && p.Type == typ && uint64(i) != info.RootPage {
				found = int64(i)
			}
		}
		return nil
	})
	if found < 0 {
		t.Fatalf("no %s page in the file", typ)
	}
	return found
}

// A damaged page that is free is never read: bbolt overwrites it when it
// reuses it, so the file is whole.
func TestDamagedFreePageOpens(t *testing.T) {
	dir, path, info := goodFile(t)
	patch(t, path, pageOf(t, path, "free")*int64(info.PageSize)+8, junk(500))
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// Keys out of order pass the inspection of the pages but not bbolt's own
// check, which Open runs on files up to FullCheckLimit (CheckAuto) or
// always (CheckFull); CheckQuick leaves it out.
func TestKeysOutOfOrderRefusedByTheFullCheck(t *testing.T) {
	dir, path, info := goodFile(t)
	leaf := pageOf(t, path, "leaf")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, info.PageSize)
	if _, err := f.ReadAt(page, leaf*int64(info.PageSize)); err != nil {
		t.Fatal(err)
	}
	pos := binary.NativeEndian.Uint32(page[16+4:]) // element 0's key
	page[16+int(pos)] = 0xff                       // now larger than element 1's
	if _, err := f.WriteAt(page, leaf*int64(info.PageSize)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := store.Inspect(path); err != nil {
		t.Fatalf("Inspect: %v; want the pages to pass", err)
	}
	for _, mode := range []store.CheckMode{store.CheckAuto, store.CheckFull} {
		_, err := store.Open(dir, &store.Options{Check: mode})
		if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "bbolt's check") {
			t.Errorf("Open with check mode %d: %v; want ErrDamaged from bbolt's check", mode, err)
		}
	}
	if _, err := store.Verify(path, 0); !errors.Is(err, store.ErrDamaged) {
		t.Errorf("Verify: %v; want ErrDamaged", err)
	}
	s, err := store.Open(dir, &store.Options{Check: store.CheckQuick})
	if err != nil {
		t.Fatalf("Open with CheckQuick: %v", err)
	}
	s.Close()
}
