package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

func TestConsents(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now})
	now := clk.Now()
	c1 := store.Consent{User: "alice", ClientID: "c1", Scopes: []string{"notes:read"}, RedirectHost: "127.0.0.1", ExpiresAt: now.Add(time.Hour)}
	c2 := store.Consent{User: "alice", ClientID: "c2", Scopes: []string{"notes:write"}, RedirectHost: "localhost", ExpiresAt: now.Add(2 * time.Hour)}
	c3 := store.Consent{User: "bob", ClientID: "c1", Scopes: []string{"api:call"}, RedirectHost: "127.0.0.1"}
	for _, c := range []store.Consent{c1, c2, c3} {
		if err := s.PutConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	withCreated := func(c store.Consent) store.Consent { c.CreatedAt = now; return c }

	t.Run("a stored consent comes back with CreatedAt set", func(t *testing.T) {
		got, err := s.GetConsent(ctx, "alice", "c1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(withCreated(c1), *got); diff != "" {
			t.Errorf("GetConsent (-want +got):\n%s", diff)
		}
	})

	t.Run("list by user and list of all", func(t *testing.T) {
		for _, c := range []struct {
			user string
			want []store.Consent
		}{
			{"alice", []store.Consent{withCreated(c1), withCreated(c2)}},
			{"bob", []store.Consent{withCreated(c3)}},
			{"", []store.Consent{withCreated(c1), withCreated(c2), withCreated(c3)}},
			{"nobody", nil},
		} {
			got, err := s.ListConsents(ctx, c.user)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ListConsents(%q) (-want +got):\n%s", c.user, diff)
			}
		}
	})

	t.Run("an expired consent is not found and not listed", func(t *testing.T) {
		clk.Advance(90 * time.Minute)
		if _, err := s.GetConsent(ctx, "alice", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConsent of an expired consent: got %v; want ErrNotFound", err)
		}
		got, _ := s.ListConsents(ctx, "alice")
		if diff := cmp.Diff([]store.Consent{withCreated(c2)}, got); diff != "" {
			t.Errorf("ListConsents after expiry (-want +got):\n%s", diff)
		}
		if _, err := s.GetConsent(ctx, "bob", "c1"); err != nil {
			t.Errorf("a consent without expiry: got %v; want it kept", err)
		}
	})

	t.Run("put replaces, delete forgets, a second delete is ErrNotFound", func(t *testing.T) {
		c := c2
		c.Scopes = []string{"notes:read", "notes:write"}
		if err := s.PutConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetConsent(ctx, "alice", "c2")
		if diff := cmp.Diff(c.Scopes, got.Scopes); diff != "" {
			t.Errorf("replaced scopes (-want +got):\n%s", diff)
		}
		if err := s.DeleteConsent(ctx, "alice", "c2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetConsent(ctx, "alice", "c2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetConsent after delete: got %v; want ErrNotFound", err)
		}
		if err := s.DeleteConsent(ctx, "alice", "c2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteConsent: got %v; want ErrNotFound", err)
		}
	})

	t.Run("a consent without user or client is refused", func(t *testing.T) {
		if err := s.PutConsent(ctx, store.Consent{User: "alice"}); err == nil {
			t.Errorf("got nil; want an error")
		}
	})
}
