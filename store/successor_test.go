package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

func TestRefreshSuccessors(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now})
	sealed := []byte("sealed token response")
	if err := s.PutRefreshSuccessor(ctx, "old-sig", sealed, clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	t.Run("within its lifetime the sealed bytes come back", func(t *testing.T) {
		got, err := s.GetRefreshSuccessor(ctx, "old-sig")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sealed, got); diff != "" {
			t.Errorf("GetRefreshSuccessor (-want +got):\n%s", diff)
		}
	})

	t.Run("an unknown signature is ErrNotFound", func(t *testing.T) {
		if _, err := s.GetRefreshSuccessor(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("got %v; want ErrNotFound", err)
		}
	})

	t.Run("after its expiry it is ErrNotFound", func(t *testing.T) {
		clk.Advance(time.Minute)
		if _, err := s.GetRefreshSuccessor(ctx, "old-sig"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("got %v; want ErrNotFound", err)
		}
	})
}

func TestSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Secret(ctx, "hmac", 32)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Secret(ctx, "csrf", 32)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestDir(t, dir)
	again, err := s.Secret(ctx, "hmac", 32)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a secret is random, of the asked size, and distinct per name", func(t *testing.T) {
		if len(first) != 32 || cmp.Equal(first, make([]byte, 32)) || cmp.Equal(first, other) {
			t.Errorf("got %d bytes, zero=%v, equal to another name's=%v; want 32 random distinct bytes",
				len(first), cmp.Equal(first, make([]byte, 32)), cmp.Equal(first, other))
		}
	})

	t.Run("a secret survives a restart", func(t *testing.T) {
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("Secret after reopen (-want +got):\n%s", diff)
		}
	})

	t.Run("an empty name or size is refused", func(t *testing.T) {
		if _, err := s.Secret(ctx, "", 32); err == nil {
			t.Errorf("empty name: got nil; want an error")
		}
		if _, err := s.Secret(ctx, "x", 0); err == nil {
			t.Errorf("zero size: got nil; want an error")
		}
	})
}

// openTestDir is openTest on a given directory.
func openTestDir(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("Check at clean-up: %v", err)
		}
		s.Close()
	})
	return s
}
