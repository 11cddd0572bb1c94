package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mcpd/mcpd/store"
)

// grantAt is a grant whose expiries count from now.
func grantAt(id, client, subject string, now time.Time) *fosite.Request {
	r := newGrant(id, client, subject)
	r.Session = &oauth2.JWTSession{
		Subject: subject,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AuthorizeCode: now.Add(10 * time.Minute),
			fosite.AccessToken:   now.Add(time.Hour),
			fosite.RefreshToken:  now.Add(24 * time.Hour),
		},
	}
	return r
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now, UnactivatedClientTTL: 48 * time.Hour})
	now := clk.Now()
	addClient(t, s, "idle") // dynamic, never activated
	if err := s.CreateClient(ctx, &store.Client{ID: "used", Source: store.SourceDynamic, ActivatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, &store.Client{ID: "static", Source: store.SourceStatic}); err != nil {
		t.Fatal(err)
	}
	old := grantAt("old", "used", "alice", now)
	if err := s.CreateAuthorizeCodeSession(ctx, "code-old", old); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePKCERequestSession(ctx, "code-old", old); err != nil {
		t.Fatal(err)
	}
	issuePair(t, s, old, "at-old", "rt-old")
	if err := s.SetClientAssertionJWT(ctx, "jti-old", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsent(ctx, store.Consent{User: "alice", ClientID: "used", ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsent(ctx, store.Consent{User: "bob", ClientID: "used", ExpiresAt: now.Add(100 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRefreshSuccessor(ctx, "rt-old", []byte("x"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, sess := range []store.LoginSession{
		{ID: "sid-old", User: "alice", ExpiresAt: now.Add(12 * time.Hour)},
		{ID: "sid-long", User: "bob", ExpiresAt: now.Add(100 * time.Hour)},
	} {
		if err := s.CreateSession(ctx, sess, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutPendingAuthorization(ctx, store.PendingAuthorization{ID: "req-old", ClientID: "used", ExpiresAt: now.Add(10 * time.Minute)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutWebAuthnSession(ctx, "ceremony-old", []byte("x"), now.Add(5*time.Minute), 0); err != nil {
		t.Fatal(err)
	}

	t.Run("nothing live is swept", func(t *testing.T) {
		got, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.SweepStats{}, got); diff != "" {
			t.Errorf("Sweep (-want +got):\n%s", diff)
		}
	})

	clk.Advance(50 * time.Hour)
	fresh := grantAt("fresh", "used", "alice", clk.Now())
	issuePair(t, s, fresh, "at-fresh", "rt-fresh")

	t.Run("everything expired is swept, and idle dynamic clients", func(t *testing.T) {
		got, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := store.SweepStats{Codes: 1, Access: 1, Refresh: 1, PKCE: 1, JTIs: 1, Consents: 1, Successors: 1, Clients: 1, Sessions: 1, Pending: 1, Ceremonies: 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Sweep (-want +got):\n%s", diff)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt-old", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("expired refresh token: got %v; want fosite.ErrNotFound", err)
		}
		if !accessAlive(s, "at-fresh") || !refreshAlive(s, "rt-fresh") {
			t.Errorf("a live grant was swept")
		}
		if _, err := s.GetSession(ctx, "sid-long"); err != nil {
			t.Errorf("a live session was swept: %v", err)
		}
		var left []string
		cs, _ := s.ListClients(ctx)
		for _, c := range cs {
			left = append(left, c.ID)
		}
		if diff := cmp.Diff([]string{"static", "used"}, left); diff != "" {
			t.Errorf("clients left (-want +got):\n%s", diff)
		}
	})

	t.Run("a swept grant leaves no index behind", func(t *testing.T) {
		if n, err := s.RevokeSubjectGrants(ctx, "alice"); err != nil || n != 1 {
			t.Errorf("RevokeSubjectGrants: got %d, %v; want only the fresh grant", n, err)
		}
		got, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.SweepStats{}, got); diff != "" {
			t.Errorf("second Sweep (-want +got):\n%s", diff)
		}
	})
}

// lineWriter hands every write to a channel, so a test can wait for a log
// line.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

func TestRunJanitor(t *testing.T) {
	t.Run("the janitor sweeps on its interval, logs counts and stops with its context", func(t *testing.T) {
		clk := newClock()
		lines := make(lineWriter, 16)
		s := openTest(t, &store.Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(lines, nil))})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.SetClientAssertionJWT(ctx, "jti", clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		done := make(chan struct{})
		go func() {
			s.RunJanitor(ctx, 10*time.Millisecond)
			close(done)
		}()
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case line := <-lines:
				if strings.Contains(line, "janitor swept") {
					if !strings.Contains(line, "jtis=1") {
						t.Errorf("got log line %q; want a sweep of one JTI", line)
					}
					break wait
				}
			case <-timeout:
				t.Fatal("janitor did not sweep within 5s")
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("RunJanitor did not return after cancel")
		}
	})
}

// TestSweepInBatches sweeps a backlog larger than one janitor write takes:
// it is removed in several writes, and everything alive stays.
func TestSweepInBatches(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now})
	addClient(t, s, "c1")
	const expired = 1300 // two full batches of 512 and a partial one
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range expired {
		id := fmt.Sprintf("old-%04d", i)
		if err := s.CreateAccessTokenSession(tctx, "at-"+id, grantAt(id, "c1", "alice", clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(tctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	for _, id := range []string{"live-a", "live-b", "live-c"} {
		if err := s.CreateAccessTokenSession(ctx, "at-"+id, grantAt(id, "c1", "alice", clk.Now())); err != nil {
			t.Fatal(err)
		}
	}

	before := commits(s)
	st, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.SweepStats{Access: expired}, st); diff != "" {
		t.Errorf("Sweep (-want +got):\n%s", diff)
	}
	backlog := commits(s) - before
	before = commits(s)
	if st, err := s.Sweep(ctx); err != nil || st != (store.SweepStats{}) {
		t.Fatalf("second Sweep: %+v, %v; want nothing left", st, err)
	}
	if extra := backlog - (commits(s) - before); extra != 2 {
		t.Errorf("writes beyond an empty sweep's for %d expired tokens: %d; want 2 (batches of 512)", expired, extra)
	}
	for _, id := range []string{"live-a", "live-b", "live-c"} {
		if _, err := s.GetAccessTokenSession(ctx, "at-"+id, &oauth2.JWTSession{}); err != nil {
			t.Errorf("live token %s after the sweep: %v", id, err)
		}
	}
	if n, err := s.RevokeClientGrants(ctx, "c1"); err != nil || n != 3 {
		t.Errorf("RevokeClientGrants after the sweep: %d, %v; want the 3 live grants", n, err)
	}
}

// TestSweepStatsLogAttrsNameEveryCount: a kind added to SweepStats shows
// in the janitor's log line of both backends.
func TestSweepStatsLogAttrsNameEveryCount(t *testing.T) {
	attrs := store.SweepStats{}.LogAttrs()
	if got, want := len(attrs)/2, reflect.TypeFor[store.SweepStats]().NumField(); got != want {
		t.Errorf("LogAttrs names %d counts; SweepStats has %d", got, want)
	}
}
