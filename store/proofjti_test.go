package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/storetest"
)

func TestConformanceProofJTIsBolt(t *testing.T) {
	storetest.RunProofJTIs(t, func(t *testing.T) storetest.ProofJTIStore { return openTest(t, nil) }, store.ErrAlreadyExists)
}

func TestProofJTI(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	dir := t.TempDir()
	s, err := store.Open(dir, &store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RememberProofJTI(ctx, "jkt:jti-1", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(dir, &store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	t.Run("a remembered proof is still known after a restart", func(t *testing.T) {
		if err := s.RememberProofJTI(ctx, "jkt:jti-1", clk.Now().Add(time.Minute)); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("RememberProofJTI after reopen: %v; want ErrAlreadyExists", err)
		}
		if known, err := s.ProofJTIKnown(ctx, "jkt:jti-1"); err != nil || !known {
			t.Fatalf("ProofJTIKnown after reopen: %v, %v; want true", known, err)
		}
	})
	t.Run("a proof record is not a client-assertion JTI", func(t *testing.T) {
		if err := s.ClientAssertionJWTValid(ctx, "jkt:jti-1"); err != nil {
			t.Fatalf("ClientAssertionJWTValid of a proof key: %v; want nil", err)
		}
	})
	t.Run("the janitor sweeps an expired proof record", func(t *testing.T) {
		clk.Advance(2 * time.Minute)
		st, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.JTIs != 1 {
			t.Fatalf("Sweep removed %d JTIs; want 1", st.JTIs)
		}
		if known, _ := s.ProofJTIKnown(ctx, "jkt:jti-1"); known {
			t.Fatal("the swept proof is still known")
		}
	})
	t.Run("an empty key or a zero expiry is refused", func(t *testing.T) {
		if err := s.RememberProofJTI(ctx, "", clk.Now().Add(time.Minute)); err == nil {
			t.Error("empty key: got nil")
		}
		if err := s.RememberProofJTI(ctx, "k", time.Time{}); err == nil {
			t.Error("zero expiry: got nil")
		}
	})
}

// BenchmarkRememberProofJTI is the cost of a durable replay record per
// proof, with 16 writers sharing group commits.
func BenchmarkRememberProofJTI(b *testing.B) {
	s := openTest(b, nil)
	var n atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.RememberProofJTI(context.Background(), fmt.Sprint("jkt:", n.Add(1)), exp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
