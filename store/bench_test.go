package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite/handler/oauth2"
	bolt "go.etcd.io/bbolt"

	"github.com/mcpd/mcpd/store"
)

// Benchmarks: go test -run '^$' -bench . -benchmem ./store/
// Every write is durable (fdatasync before it returns).

func benchStore(b *testing.B, opts *store.Options) *store.Store {
	b.Helper()
	s, err := store.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	addClient(b, s, "c1")
	return s
}

// BenchmarkAccessTokenCreateGet stores an access-token session and reads
// it back, one goroutine.
func BenchmarkAccessTokenCreateGet(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts *store.Options
	}{{"batched", nil}, {"unbatched", &store.Options{MaxGroup: 1}}} {
		b.Run(mode.name, func(b *testing.B) {
			s := benchStore(b, mode.opts)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("g%d", i)
				if err := s.CreateAccessTokenSession(ctx, "at-"+id, newGrant(id, "c1", "alice")); err != nil {
					b.Fatal(err)
				}
				if _, err := s.GetAccessTokenSession(ctx, "at-"+id, &oauth2.JWTSession{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefreshRotation is the storage part of one refresh as fosite's
// handler does it: in one transaction, rotate the old refresh token and
// store the new access and refresh tokens.
func BenchmarkRefreshRotation(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	req := newGrant("g1", "c1", "alice")
	if err := s.CreateAccessTokenSession(ctx, "at-0", req); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt-0", "at-0", req); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetRefreshTokenSession(ctx, fmt.Sprintf("rt-%d", i), &oauth2.JWTSession{}); err != nil {
			b.Fatal(err)
		}
		tctx, err := s.BeginTX(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.RotateRefreshToken(tctx, "g1", fmt.Sprintf("rt-%d", i)); err != nil {
			b.Fatal(err)
		}
		at, rt := fmt.Sprintf("at-%d", i+1), fmt.Sprintf("rt-%d", i+1)
		if err := s.CreateAccessTokenSession(tctx, at, req); err != nil {
			b.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(tctx, rt, at, req); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(tctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenLookup reads an access-token session among 10 000, as the
// resource server does on every MCP request.
func BenchmarkTokenLookup(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	const n = 10000
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("g%d", i)
		if err := s.CreateAccessTokenSession(tctx, "at-"+id, newGrant(id, "c1", "alice")); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Commit(tctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("at-g%d", i%n), &oauth2.JWTSession{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDurableWrites32 stores access-token sessions from 32 goroutines
// at once: through batched single writes, unbatched single writes, and one
// transaction each (as fosite's token endpoint does).
func BenchmarkDurableWrites32(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts *store.Options
		tx   bool
	}{
		{"batched", nil, false},
		{"unbatched", &store.Options{MaxGroup: 1}, false},
		{"transaction", nil, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			s := benchStore(b, mode.opts)
			ctx := context.Background()
			var seq atomic.Int64
			b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("g%d", seq.Add(1))
					req := newGrant(id, "c1", "alice")
					if mode.tx {
						tctx, err := s.BeginTX(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if err := s.CreateAccessTokenSession(tctx, "at-"+id, req); err != nil {
							b.Error(err)
							return
						}
						if err := s.Commit(tctx); err != nil {
							b.Error(err)
							return
						}
						continue
					}
					if err := s.CreateAccessTokenSession(ctx, "at-"+id, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBoltBaseline is raw bbolt on the same disk: one small Put per
// durable commit from one goroutine, and Batch from 32 goroutines.
func BenchmarkBoltBaseline(b *testing.B) {
	open := func(b *testing.B) *bolt.DB {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
			b.Fatal(err)
		}
		return db
	}
	value := make([]byte, 400)
	b.Run("update-1", func(b *testing.B) {
		db := open(b)
		for i := 0; b.Loop(); i++ {
			err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%d", i), value)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch-32", func(b *testing.B) {
		db := open(b)
		db.MaxBatchDelay = 2 * time.Millisecond
		var seq atomic.Int64
		b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := fmt.Appendf(nil, "k%d", seq.Add(1))
				err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(k, value) })
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
