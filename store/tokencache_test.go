package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
)

// TestTokenCacheFollowsEveryRevocation caches a token, ends it through
// each path that can, and looks it up again: it is gone at once.
func TestTokenCacheFollowsEveryRevocation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(s *store.Store, clk *clock) error
	}{
		{"DeleteAccessTokenSession", func(s *store.Store, _ *clock) error { return s.DeleteAccessTokenSession(ctx, "at-g1") }},
		{"RevokeAccessToken", func(s *store.Store, _ *clock) error { return s.RevokeAccessToken(ctx, "g1") }},
		{"RotateRefreshToken", func(s *store.Store, _ *clock) error { return s.RotateRefreshToken(ctx, "g1", "rt-g1") }},
		{"RevokeClientGrants", func(s *store.Store, _ *clock) error { _, err := s.RevokeClientGrants(ctx, "c1"); return err }},
		{"RevokeSubjectGrants", func(s *store.Store, _ *clock) error { _, err := s.RevokeSubjectGrants(ctx, "alice"); return err }},
		{"RevokeSubjectClientGrants", func(s *store.Store, _ *clock) error {
			_, err := s.RevokeSubjectClientGrants(ctx, "alice", "c1")
			return err
		}},
		{"DeleteClient", func(s *store.Store, _ *clock) error { return s.DeleteClient(ctx, "c1") }},
		{"DeleteUser", func(s *store.Store, _ *clock) error { return s.DeleteUser(ctx, "alice") }},
		{"Sweep after expiry", func(s *store.Store, clk *clock) error {
			clk.Advance(2 * time.Hour)
			_, err := s.Sweep(ctx)
			return err
		}},
		{"committed transaction", func(s *store.Store, _ *clock) error {
			tctx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			if err := s.RevokeAccessToken(tctx, "g1"); err != nil {
				return err
			}
			if _, err := s.LookupAccessToken(tctx, "at-g1"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("lookup inside the transaction: %v; want ErrNotFound", err)
			}
			// Outside the transaction the revocation is not committed yet.
			if _, err := s.LookupAccessToken(ctx, "at-g1"); err != nil {
				return fmt.Errorf("lookup outside before the commit: %v", err)
			}
			return s.Commit(tctx)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Now().UTC()}
			s := openTest(t, &store.Options{Now: clk.Now})
			addClient(t, s, "c1")
			if err := s.CreateUser(ctx, "alice", "pw"); err != nil {
				t.Fatal(err)
			}
			issuePair(t, s, newGrant("g1", "c1", "alice"), "at-g1", "rt-g1")
			for range 2 {
				if _, err := s.LookupAccessToken(ctx, "at-g1"); err != nil {
					t.Fatalf("LookupAccessToken before: %v", err)
				}
			}
			if n := s.CachedTokens(); n != 1 {
				t.Fatalf("cached tokens after two lookups: %d; want 1", n)
			}
			if err := tc.end(s, clk); err != nil {
				t.Fatal(err)
			}
			if _, err := s.LookupAccessToken(ctx, "at-g1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LookupAccessToken after %s: %v; want ErrNotFound", tc.name, err)
			}
		})
	}
}

// TestTokenCacheKeepsOthersAndCopies: a revocation drops only what it
// touched, and a caller cannot change what the cache holds.
func TestTokenCacheKeepsOthersAndCopies(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")
	issuePair(t, s, newGrant("g1", "c1", "alice"), "at-g1", "rt-g1")
	issuePair(t, s, newGrant("g2", "c1", "bob"), "at-g2", "rt-g2")
	for _, sig := range []string{"at-g1", "at-g2"} {
		info, err := s.LookupAccessToken(ctx, sig)
		if err != nil {
			t.Fatal(err)
		}
		info.GrantedScopes[0] = "changed by the caller"
	}
	if err := s.RevokeAccessToken(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if n := s.CachedTokens(); n != 1 {
		t.Errorf("cached tokens after revoking one of two: %d; want 1", n)
	}
	info, err := s.LookupAccessToken(ctx, "at-g2")
	if err != nil {
		t.Fatal(err)
	}
	if info.GrantedScopes[0] != "notes:read" {
		t.Errorf("scope from the cache: %q; want notes:read", info.GrantedScopes[0])
	}
}

// TestTokenCacheRevocationRacesLookups looks tokens up from several
// goroutines while they are revoked: once RevokeAccessToken has returned,
// no lookup that starts afterwards finds the token.
func TestTokenCacheRevocationRacesLookups(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")
	const rounds, readers = 50, 4
	for r := range rounds {
		id := fmt.Sprintf("g%d", r)
		sig := "at-" + id
		issuePair(t, s, newGrant(id, "c1", "alice"), sig, "rt-"+id)
		var revoked atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					after := revoked.Load()
					_, err := s.LookupAccessToken(ctx, sig)
					if after && err == nil {
						t.Errorf("%s found by a lookup that started after its revocation returned", sig)
						return
					}
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Error(err)
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond) // let the readers fill the cache
		if err := s.RevokeAccessToken(ctx, id); err != nil {
			t.Fatal(err)
		}
		revoked.Store(true)
		time.Sleep(time.Millisecond)
		close(stop)
		wg.Wait()
	}
}

// TestTokenCacheDropsAReadOvertakenByACommit holds a lookup between its
// database read and caching it while the token is revoked: what it read
// is stale by then and must not be cached.
func TestTokenCacheDropsAReadOvertakenByACommit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")
	issuePair(t, s, newGrant("g1", "c1", "alice"), "at-g1", "rt-g1")

	read, resume := make(chan struct{}), make(chan struct{})
	s.SetTokenLookupHook(func() {
		close(read)
		<-resume
	})
	lookup := make(chan error, 1)
	go func() {
		_, err := s.LookupAccessToken(ctx, "at-g1")
		lookup <- err
	}()
	<-read
	s.SetTokenLookupHook(nil)
	if err := s.RevokeAccessToken(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-lookup; err != nil {
		t.Fatalf("the held lookup (it read before the revocation): %v", err)
	}
	if _, err := s.LookupAccessToken(ctx, "at-g1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupAccessToken after the revocation: %v; want ErrNotFound", err)
	}
}
