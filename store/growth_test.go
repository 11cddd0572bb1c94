package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// rotation is one refresh of grant g as the token endpoint makes it: in
// one transaction the presented refresh token is rotated, a new access and
// refresh token are stored with a DefaultSession like authz's, and the
// sealed answer is kept for the grace window.
func rotation(ctx context.Context, s *store.Store, grant, client, subject, prev, next string, now time.Time) error {
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	defer s.Rollback(tctx)
	if prev != "" {
		if err := s.RotateRefreshToken(tctx, grant, prev); err != nil {
			return err
		}
	}
	req := fosite.NewRequest()
	req.ID = grant
	req.RequestedAt = now
	req.Client = &fosite.DefaultClient{ID: client}
	req.RequestedScope = fosite.Arguments{"notes:read", "notes:write"}
	req.GrantedScope = req.RequestedScope
	req.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
	req.Form.Set("client_id", client)
	req.Form.Set("grant_type", "refresh_token")
	req.Session = &fosite.DefaultSession{
		Subject: subject, Username: subject,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AccessToken:   now.Add(time.Hour).Round(time.Second),
			fosite.RefreshToken:  now.Add(30 * 24 * time.Hour).Round(time.Second),
			fosite.AuthorizeCode: now.Add(time.Minute),
		},
		Extra: map[string]any{"grant_start": now.Unix()},
	}
	if err := s.CreateAccessTokenSession(tctx, "at-"+next, req); err != nil {
		return err
	}
	if err := s.CreateRefreshTokenSession(tctx, next, "at-"+next, req); err != nil {
		return err
	}
	if prev != "" {
		// A sealed token response is about 430 bytes.
		if err := s.PutRefreshSuccessor(tctx, prev, make([]byte, 430), now.Add(time.Minute)); err != nil {
			return err
		}
	}
	return s.Commit(tctx)
}

// TestRefreshFloodStaysBounded is the short version of the 10-minute
// refresh flood of docs/reliability.md ("Bounded growth"): 100 grants are
// rotated over and over, and what the file holds stays proportional to
// the grants, not to the rotations. Every rotation leaves a tombstone and
// a successor, and a grant keeps only its newest DefaultKeepRotated of
// them.
func TestRefreshFloodStaysBounded(t *testing.T) {
	const grants = 100
	const rotations = 50 // six times what a grant keeps
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now})
	for c := range 10 {
		addClient(t, s, fmt.Sprintf("client-%d", c))
	}
	var wg sync.WaitGroup
	errs := make(chan error, grants)
	for g := range grants {
		wg.Go(func() {
			grant, client, subject := fmt.Sprintf("%08x-1111-4222-8333-444455556666", g), fmt.Sprintf("client-%d", g%10), fmt.Sprintf("user-%d", g%7)
			prev := ""
			for i := range rotations + 1 {
				next := fmt.Sprintf("rt-%d-%d", g, i)
				if err := rotation(ctx, s, grant, client, subject, prev, next, clk.Now()); err != nil {
					errs <- fmt.Errorf("grant %d rotation %d: %w", g, i, err)
					return
				}
				prev = next
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, b := range st.Buckets {
		count[b.Name] = b.Records
	}
	t.Logf("%d rotations over %d grants: live data %d bytes (%d of keys and values), file %d bytes; records %v",
		grants*rotations, grants, st.LiveBytes, st.DataBytes, st.FileBytes, count)
	want := map[string]int{
		"access":     grants,                                  // the newest of each grant
		"refresh":    grants * (1 + store.DefaultKeepRotated), // live + tombstones
		"successors": grants * store.DefaultKeepRotated,
	}
	for name, n := range want {
		if count[name] != n {
			t.Errorf("%s: %d records; want %d", name, count[name], n)
		}
	}
	if max := int64(2 << 20); st.LiveBytes > max {
		t.Errorf("live data %d bytes; want at most %d", st.LiveBytes, max)
	}
	if max := int64(32 << 20); st.FileBytes > max {
		t.Errorf("file %d bytes; want at most %d", st.FileBytes, max)
	}
}
