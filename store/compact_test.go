package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// issueAccess stores an access token for client under signature.
func issueAccess(ctx context.Context, s *store.Store, client, signature string) error {
	req := fosite.NewRequest()
	req.ID = "grant-" + signature
	req.Client = &fosite.DefaultClient{ID: client}
	req.GrantedScope = fosite.Arguments{"notes:read"}
	req.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
	req.Session = &fosite.DefaultSession{Subject: "client:" + client, ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: time.Now().Add(time.Hour)}}
	return s.CreateAccessTokenSession(ctx, signature, req)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestCompact(t *testing.T) {
	ctx := context.Background()

	t.Run("gives back what deleted records left and keeps every live one", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		const n = 3000
		inTx(t, s, func(tctx context.Context) error {
			for i := range n {
				if err := issueAccess(tctx, s, "c1", fmt.Sprintf("sig-%d", i)); err != nil {
					return err
				}
			}
			return nil
		})
		inTx(t, s, func(tctx context.Context) error {
			for i := range n {
				if i%10 != 0 {
					if err := s.DeleteAccessTokenSession(tctx, fmt.Sprintf("sig-%d", i)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		before, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("file %d → %d bytes; live data %d → %d", st.Before, st.After, before.LiveBytes, after.LiveBytes)
		if st.Before != before.FileBytes || st.After != after.FileBytes || st.After != fileSize(t, s.Path()) {
			t.Errorf("Compact reported %+v; the file was %d and is %d bytes", st, before.FileBytes, fileSize(t, s.Path()))
		}
		if st.After*3 > st.Before {
			t.Errorf("compaction took the file from %d to %d bytes; want it at most a third", st.Before, st.After)
		}
		// bbolt grows a file under 16 MiB to a power of two.
		if limit := nextPow2(2 * after.LiveBytes); after.FileBytes > limit {
			t.Errorf("compacted file %d bytes for %d of live data; want at most %d", after.FileBytes, after.LiveBytes, limit)
		}
		if before.DataBytes != after.DataBytes {
			t.Errorf("records took %d bytes before and %d after", before.DataBytes, after.DataBytes)
		}
		for i := range n {
			_, err := s.LookupAccessToken(ctx, fmt.Sprintf("sig-%d", i))
			if live := i%10 == 0; live != (err == nil) {
				t.Fatalf("token %d after compaction: %v; want live %v", i, err, live)
			}
		}
		if err := issueAccess(ctx, s, "c1", "after"); err != nil {
			t.Fatalf("a write after compaction: %v", err)
		}
		if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("compacted file: %v, mode %v; want 0600", err, fi.Mode().Perm())
		}
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".*compact*"))
		if len(leftovers) > 0 {
			t.Errorf("compaction left %v behind", leftovers)
		}
	})

	t.Run("while serving, no read fails and no acknowledged write is lost", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		inTx(t, s, func(tctx context.Context) error {
			for i := range 500 {
				if err := issueAccess(tctx, s, "c1", fmt.Sprintf("old-%d", i)); err != nil {
					return err
				}
			}
			return nil
		})
		var stop atomic.Bool
		var wg sync.WaitGroup
		var mu sync.Mutex
		var acked []string
		errs := make(chan error, 16)
		for w := range 4 {
			wg.Go(func() { // writers: every token they were told is stored must be there
				for i := 0; !stop.Load(); i++ {
					sig := fmt.Sprintf("w%d-%d", w, i)
					if err := issueAccess(ctx, s, "c1", sig); err != nil {
						errs <- fmt.Errorf("write %s: %w", sig, err)
						return
					}
					mu.Lock()
					acked = append(acked, sig)
					mu.Unlock()
				}
			})
			wg.Go(func() { // readers: a token issued before never goes missing
				for i := 0; !stop.Load(); i++ {
					if _, err := s.LookupAccessToken(ctx, fmt.Sprintf("old-%d", i%500)); err != nil {
						errs <- fmt.Errorf("read: %w", err)
						return
					}
					if _, err := s.GetClient(ctx, "c1"); err != nil {
						errs <- fmt.Errorf("read client: %w", err)
						return
					}
				}
			})
		}
		for range 5 {
			if _, err := s.Compact(ctx); err != nil {
				t.Error(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, sig := range acked {
			if _, err := s.LookupAccessToken(ctx, sig); err != nil {
				t.Fatalf("acknowledged token %s after compactions: %v", sig, err)
			}
		}
		t.Logf("%d writes acknowledged across 5 compactions", len(acked))
	})

	t.Run("a transaction open when compaction starts commits first", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		tctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := issueAccess(tctx, s, "c1", "in-tx"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := s.Compact(ctx); done <- err }()
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupAccessToken(ctx, "in-tx"); err != nil {
			t.Errorf("token written in the transaction: %v", err)
		}
	})

	t.Run("the compacted file opens again after close", func(t *testing.T) {
		dir := t.TempDir()
		s, err := store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		addClient(t, s, "c1")
		if _, err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.LookupClient(ctx, "c1"); err != nil {
			t.Errorf("client after compaction and reopen: %v", err)
		}
		if err := s.Check(); err != nil {
			t.Error(err)
		}
	})

	t.Run("a cancelled context compacts nothing", func(t *testing.T) {
		s := openTest(t, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Compact(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Compact = %v; want context.Canceled", err)
		}
	})
}

func nextPow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p *= 2
	}
	return p
}

// inTx runs fn in one store transaction and commits it.
func inTx(t *testing.T, s *store.Store, fn func(context.Context) error) {
	t.Helper()
	tctx, err := s.BeginTX(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tctx); err != nil {
		s.Rollback(tctx)
		t.Fatal(err)
	}
	if err := s.Commit(tctx); err != nil {
		t.Fatal(err)
	}
}
