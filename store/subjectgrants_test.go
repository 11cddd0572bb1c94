package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mcpd/mcpd/store"
)

func TestListSubjectGrants(t *testing.T) {
	ctx := context.Background()
	proto := func() fosite.Session { return &oauth2.JWTSession{} }

	t.Run("a grant of a removed client is not listed", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		addClient(t, s, "c2")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		issuePair(t, s, newGrant("g2", "c2", "alice"), "at2", "rt2")
		if err := s.DeleteClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		reqs, err := s.ListSubjectGrants(ctx, "alice", proto)
		if err != nil {
			t.Fatal(err)
		}
		if len(reqs) != 1 || reqs[0].GetClient().GetID() != "c2" {
			t.Errorf("listed %d grants; want only c2's", len(reqs))
		}
	})

	t.Run("an expired grant is not listed", func(t *testing.T) {
		clk := &clock{t: time.Now().UTC()}
		s := openTest(t, &store.Options{Now: clk.Now})
		addClient(t, s, "c1")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		clk.Advance(25 * time.Hour) // past the refresh token's expiry
		reqs, err := s.ListSubjectGrants(ctx, "alice", proto)
		if err != nil || len(reqs) != 0 {
			t.Errorf("ListSubjectGrants: %d grants, %v; want none", len(reqs), err)
		}
	})

	t.Run("the newest token gives the time of last use", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		old := newGrant("g1", "c1", "alice")
		issuePair(t, s, old, "at1", "rt1")
		if err := s.RotateRefreshToken(ctx, "g1", "rt1"); err != nil {
			t.Fatal(err)
		}
		newer := newGrant("g1", "c1", "alice")
		newer.RequestedAt = old.RequestedAt.Add(time.Hour)
		issuePair(t, s, newer, "at2", "rt2")
		reqs, err := s.ListSubjectGrants(ctx, "alice", proto)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("ListSubjectGrants: %d grants, %v; want 1", len(reqs), err)
		}
		if got := reqs[0].GetRequestedAt(); !got.Equal(newer.RequestedAt) {
			t.Errorf("RequestedAt %v; want the rotation's %v", got, newer.RequestedAt)
		}
	})
}
