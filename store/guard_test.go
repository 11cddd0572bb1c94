//go:build unix

package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// guard turns the SIGBUS of reading a memory map past the end of its file,
// what bbolt does with a truncated database, into an ErrDamaged.
func TestGuardTurnsAFaultIntoErrDamaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "short")
	page := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, page), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 4*page, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	var sink byte
	err = guard(path, func() error {
		sink = m[3*page] // past the end of the file: SIGBUS
		return nil
	})
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("guard = %v (read %d); want ErrDamaged", err, sink)
	}
	err = guard(path, func() error { panic("index out of range") })
	if !errors.Is(err, ErrDamaged) {
		t.Errorf("guard of a panic = %v; want ErrDamaged", err)
	}
	if err := guard(path, func() error { return nil }); err != nil {
		t.Errorf("guard of a clean run = %v; want nil", err)
	}
}
