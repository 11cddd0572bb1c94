package store_test

import (
	"context"
	"testing"

	"github.com/ory/fosite/handler/oauth2"

	"github.com/mcpd/mcpd/store"
)

// The token read path keeps decoded clients; these rules hold whatever it
// caches.
func TestTokenLookupClient(t *testing.T) {
	ctx := context.Background()
	lookup := func(t *testing.T, s *store.Store) *store.Client {
		t.Helper()
		req, err := s.GetAccessTokenSession(ctx, "at-g1", &oauth2.JWTSession{})
		if err != nil {
			t.Fatal(err)
		}
		return req.GetClient().(*store.Client)
	}
	setup := func(t *testing.T) *store.Store {
		s, err := store.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		addClient(t, s, "c1")
		if err := s.CreateAccessTokenSession(ctx, "at-g1", newGrant("g1", "c1", "alice")); err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("a client changed after a lookup is read changed by the next", func(t *testing.T) {
		s := setup(t)
		if got, want := lookup(t, s).Name, "client c1"; got != want {
			t.Fatalf("name = %q; want %q", got, want)
		}
		err := s.UpdateClient(ctx, "c1", func(c *store.Client) error {
			c.Name = "renamed"
			c.Scopes = []string{"notes:read"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c := lookup(t, s)
		if c.Name != "renamed" || len(c.Scopes) != 1 {
			t.Errorf("after update: name %q, scopes %v; want renamed, [notes:read]", c.Name, c.Scopes)
		}
	})

	t.Run("changing a looked-up client changes neither the store nor the next lookup", func(t *testing.T) {
		s := setup(t)
		c := lookup(t, s)
		c.Name = "mutated"
		c.Scopes[0] = "api:call"
		c.RedirectURIs = append(c.RedirectURIs[:0], "https://evil.example/")
		again := lookup(t, s)
		if again.Name != "client c1" || again.Scopes[0] != "notes:read" || again.RedirectURIs[0] != "http://127.0.0.1/" {
			t.Errorf("second lookup = %+v; want the stored client", again)
		}
	})

	t.Run("a deleted client's token is not found", func(t *testing.T) {
		s := setup(t)
		lookup(t, s)
		if err := s.DeleteClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-g1", &oauth2.JWTSession{}); err == nil {
			t.Error("token of a deleted client still found")
		}
	})
}
