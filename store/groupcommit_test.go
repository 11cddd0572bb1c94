package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mcpd/mcpd/store"
)

// waitQueued waits until n writers wait for the writer slot. It bounds
// how long the test waits for goroutines to reach the store, not how long
// the store takes.
func waitQueued(t *testing.T, s *store.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, q := s.GroupCommitState(); q == n {
			return
		}
		if time.Now().After(deadline) {
			_, q := s.GroupCommitState()
			t.Fatalf("writers waiting for the slot: %d; want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func commits(s *store.Store) int {
	c, _ := s.GroupCommitState()
	return c
}

// TestGroupCommitSharesOneCommit queues transactions and single writes
// behind an open transaction: when it commits, all of them become durable
// with one commit, and each sees its own write.
func TestGroupCommitSharesOneCommit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")

	first, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			id := fmt.Sprintf("g%d", i)
			if i%2 == 0 { // a write outside a transaction
				errs <- s.CreateAccessTokenSession(ctx, "at-"+id, newGrant(id, "c1", "alice"))
				return
			}
			tctx, err := s.BeginTX(ctx)
			if err != nil {
				errs <- err
				return
			}
			if err := s.CreateAccessTokenSession(tctx, "at-"+id, newGrant(id, "c1", "alice")); err != nil {
				s.Rollback(tctx)
				errs <- err
				return
			}
			if _, err := s.GetAccessTokenSession(tctx, "at-"+id, &oauth2.JWTSession{}); err != nil {
				s.Rollback(tctx)
				errs <- fmt.Errorf("read own write: %w", err)
				return
			}
			errs <- s.Commit(tctx)
		}()
	}
	waitQueued(t, s, writers)
	before := commits(s)
	if err := s.CreateAccessTokenSession(first, "at-first", newGrant("first", "c1", "alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(first); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	if got := commits(s) - before; got != 1 {
		t.Errorf("commits for %d writers: %d; want 1", writers+1, got)
	}
	for i := range writers {
		sig := fmt.Sprintf("at-g%d", i)
		if _, err := s.GetAccessTokenSession(ctx, sig, &oauth2.JWTSession{}); err != nil {
			t.Errorf("GetAccessTokenSession(%s) after the commit: %v", sig, err)
		}
	}
}

// TestGroupCommitRollbackUndoesOnlyItsOwn rolls back a transaction that
// shares its bbolt transaction with one that already committed: the
// rolled-back changes are gone, record and index alike, and the earlier
// ones are kept.
func TestGroupCommitRollbackUndoesOnlyItsOwn(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c0")

	kept, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		tctx, err := s.BeginTX(ctx) // waits for kept to give the slot up
		if err != nil {
			second <- err
			return
		}
		steps := []error{
			s.UpdateClient(tctx, "kept", func(c *store.Client) error { c.Name = "renamed"; return nil }),
			s.CreateClient(tctx, &store.Client{ID: "dropped", Source: store.SourceDynamic}),
			s.DeleteClient(tctx, "c0"),
			s.CreateAccessTokenSession(tctx, "at-g2", newGrant("g2", "kept", "bob")),
			s.RevokeAccessToken(tctx, "g1"),
			s.RotateRefreshToken(tctx, "g1", "rt-g1"),
			s.PutConsent(tctx, store.Consent{User: "bob", ClientID: "kept", Scopes: []string{"notes:read"}}),
		}
		if err := errors.Join(steps...); err != nil {
			s.Rollback(tctx)
			second <- fmt.Errorf("writes before the rollback: %w", err)
			return
		}
		second <- s.Rollback(tctx)
	}()
	waitQueued(t, s, 1)

	if err := s.CreateClient(kept, &store.Client{ID: "kept", Name: "original", Source: store.SourceDynamic}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(kept, "at-g1", newGrant("g1", "kept", "alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(kept, "rt-g1", "", newGrant("g1", "kept", "alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(kept); err != nil {
		t.Fatalf("Commit of the first transaction: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second transaction: %v", err)
	}

	c, err := s.LookupClient(ctx, "kept")
	if err != nil {
		t.Fatalf("LookupClient(kept): %v", err)
	}
	if c.Name != "original" {
		t.Errorf("client name: %q; want %q", c.Name, "original")
	}
	for _, id := range []string{"c0"} {
		if _, err := s.LookupClient(ctx, id); err != nil {
			t.Errorf("LookupClient(%s): %v; want it kept", id, err)
		}
	}
	if _, err := s.LookupClient(ctx, "dropped"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupClient(dropped): %v; want ErrNotFound", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-g1", &oauth2.JWTSession{}); err != nil {
		t.Errorf("access token of the committed grant: %v", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-g1", &oauth2.JWTSession{}); err != nil {
		t.Errorf("refresh token of the committed grant: %v; want it active", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-g2", &oauth2.JWTSession{}); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("access token of the rolled-back grant: %v; want fosite.ErrNotFound", err)
	}
	if _, err := s.GetConsent(ctx, "bob", "kept"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConsent: %v; want ErrNotFound", err)
	}
	// The indexes are back as they were: nothing dangling, and the
	// client's one grant is found through them.
	st, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.SweepStats{}, st); diff != "" {
		t.Errorf("Sweep after the rollback (-want +got):\n%s", diff)
	}
	if n, err := s.RevokeClientGrants(ctx, "kept"); err != nil || n != 1 {
		t.Errorf("RevokeClientGrants(kept): %d, %v; want 1 grant", n, err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-g1", &oauth2.JWTSession{}); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("access token after revoking the client's grants: %v; want fosite.ErrNotFound (its index entry lost)", err)
	}
}

// TestGroupCommitMaxGroup caps how many writers share a commit.
func TestGroupCommitMaxGroup(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, &store.Options{MaxGroup: 2})
	addClient(t, s, "c1")

	first, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const queued = 4
	var wg sync.WaitGroup
	for i := range queued {
		wg.Go(func() {
			id := fmt.Sprintf("g%d", i)
			if err := s.CreateAccessTokenSession(ctx, "at-"+id, newGrant(id, "c1", "alice")); err != nil {
				t.Errorf("CreateAccessTokenSession: %v", err)
			}
		})
	}
	waitQueued(t, s, queued)
	before := commits(s)
	if err := s.Commit(first); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := commits(s) - before; got != 3 {
		t.Errorf("commits for 5 writers, at most 2 per commit: %d; want 3", got)
	}
}

// TestGroupCommitConcurrentTransactions runs committing and rolling-back
// transactions from many goroutines: exactly the committed ones remain,
// with consistent indexes.
func TestGroupCommitConcurrentTransactions(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")

	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("g%d-%d", w, r)
				tctx, err := s.BeginTX(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				err = errors.Join(
					s.CreateAccessTokenSession(tctx, "at-"+id, newGrant(id, "c1", "alice")),
					s.CreateRefreshTokenSession(tctx, "rt-"+id, "", newGrant(id, "c1", "alice")),
				)
				if err != nil {
					t.Error(err)
				}
				if r%3 == 0 {
					err = s.Rollback(tctx)
				} else {
					err = s.Commit(tctx)
				}
				if err != nil {
					t.Errorf("end of %s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for r := range rounds {
			id := fmt.Sprintf("g%d-%d", w, r)
			_, err := s.GetRefreshTokenSession(ctx, "rt-"+id, &oauth2.JWTSession{})
			if r%3 == 0 && !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("rolled-back %s: %v; want fosite.ErrNotFound", id, err)
			}
			if r%3 != 0 && err != nil {
				t.Errorf("committed %s: %v", id, err)
			}
		}
	}
	st, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.SweepStats{}, st); diff != "" {
		t.Errorf("Sweep (-want +got):\n%s", diff)
	}
	want := workers * (rounds - (rounds+2)/3)
	if n, err := s.RevokeClientGrants(ctx, "c1"); err != nil || n != want {
		t.Errorf("RevokeClientGrants: %d, %v; want %d", n, err, want)
	}
}

// TestGroupCommitPause: a pause (what Compact does while it copies the
// file) waits for the transaction in the writer slot to commit and holds
// every later writer back until it resumes; those writers then go on.
func TestGroupCommitPause(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	addClient(t, s, "c1")
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(tctx, "at-tx", newGrant("tx", "c1", "alice")); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- s.CreateAccessTokenSession(ctx, "at-before", newGrant("before", "c1", "alice")) }()
	waitQueued(t, s, 1)
	resumed := make(chan func(), 1)
	go func() { resumed <- s.PauseWrites() }()
	if err := s.Commit(tctx); err != nil {
		t.Fatal(err)
	}
	resume := <-resumed
	if _, err := s.LookupAccessToken(ctx, "at-tx"); err != nil {
		t.Errorf("the transaction's write after the pause began: %v", err)
	}
	// Nobody leaves the queue while paused: the writer queued behind the
	// transaction may still be in it.
	_, queued := s.GroupCommitState()
	go func() { errs <- s.CreateAccessTokenSession(ctx, "at-during", newGrant("during", "c1", "alice")) }()
	waitQueued(t, s, queued+1)
	if _, err := s.LookupAccessToken(ctx, "at-during"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a write made during the pause is visible before the resume: %v", err)
	}
	resume()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, sig := range []string{"at-before", "at-during"} {
		if _, err := s.LookupAccessToken(ctx, sig); err != nil {
			t.Errorf("%s after the resume: %v", sig, err)
		}
	}
}
