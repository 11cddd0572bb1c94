package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

func TestClients(t *testing.T) {
	ctx := context.Background()

	t.Run("a created client comes back field for field", func(t *testing.T) {
		clk := newClock()
		s := openTest(t, &store.Options{Now: clk.Now})
		want := &store.Client{
			ID: "c1", SecretHash: []byte("hash"), Name: "VS Code", URI: "https://code.visualstudio.com",
			LogoURI: "https://example.com/logo.png", RedirectURIs: []string{"http://127.0.0.1/", "http://127.0.0.1:33418/"},
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			Scopes: []string{"notes:read"}, TokenEndpointAuthMethod: "client_secret_post", ApplicationType: "native",
			Contacts: []string{"a@example.com"}, Source: store.SourceDynamic, RegistrationTokenHash: []byte("rt-hash"),
			LastUsedAt: clk.Now().Add(time.Minute), ActivatedAt: clk.Now().Add(2 * time.Minute),
		}
		if err := s.CreateClient(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupClient(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		w := *want
		w.CreatedAt = clk.Now()
		if diff := cmp.Diff(&w, got); diff != "" {
			t.Errorf("LookupClient (-want +got):\n%s", diff)
		}
		fc, err := s.GetClient(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fc.(*store.Client); !ok || fc.IsPublic() {
			t.Errorf("GetClient: got %T public=%v; want a confidential *store.Client", fc, fc.IsPublic())
		}
	})

	t.Run("an unknown client is ErrNotFound, and fosite.ErrNotFound through GetClient", func(t *testing.T) {
		s := openTest(t, nil)
		if _, err := s.LookupClient(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupClient: got %v; want ErrNotFound", err)
		}
		if _, err := s.GetClient(ctx, "nope"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("GetClient: got %v; want fosite.ErrNotFound", err)
		}
		if err := s.UpdateClient(ctx, "nope", func(*store.Client) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateClient: got %v; want ErrNotFound", err)
		}
		if err := s.DeleteClient(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteClient: got %v; want ErrNotFound", err)
		}
	})

	t.Run("a taken id is ErrAlreadyExists", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		if err := s.CreateClient(ctx, &store.Client{ID: "c1"}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("got %v; want ErrAlreadyExists", err)
		}
	})

	t.Run("an empty id is refused", func(t *testing.T) {
		s := openTest(t, nil)
		if err := s.CreateClient(ctx, &store.Client{}); err == nil {
			t.Errorf("got nil; want an error")
		}
	})

	t.Run("update applies the closure, and its error aborts it", func(t *testing.T) {
		clk := newClock()
		s := openTest(t, &store.Options{Now: clk.Now})
		addClient(t, s, "c1")
		used := clk.Now().Add(time.Hour)
		if err := s.UpdateClient(ctx, "c1", func(c *store.Client) error { c.LastUsedAt = used; return nil }); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if err := s.UpdateClient(ctx, "c1", func(c *store.Client) error { c.Name = "changed"; return boom }); !errors.Is(err, boom) {
			t.Errorf("failing closure: got %v; want boom", err)
		}
		if err := s.UpdateClient(ctx, "c1", func(c *store.Client) error { c.ID = "c2"; return nil }); err == nil {
			t.Errorf("changing the id: got nil; want an error")
		}
		got, _ := s.LookupClient(ctx, "c1")
		if !got.LastUsedAt.Equal(used) || got.Name != "client c1" {
			t.Errorf("got LastUsedAt %v name %q; want %v %q", got.LastUsedAt, got.Name, used, "client c1")
		}
	})

	t.Run("list is ordered by creation time and count agrees", func(t *testing.T) {
		clk := newClock()
		s := openTest(t, &store.Options{Now: clk.Now})
		for _, id := range []string{"zeta", "alpha", "mid"} {
			addClient(t, s, id)
			clk.Advance(time.Second)
		}
		list, err := s.ListClients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if diff := cmp.Diff([]string{"zeta", "alpha", "mid"}, ids); diff != "" {
			t.Errorf("ListClients (-want +got):\n%s", diff)
		}
		if n, err := s.CountClients(ctx); err != nil || n != 3 {
			t.Errorf("CountClients: got %d, %v; want 3", n, err)
		}
	})

	t.Run("delete removes the client's consents and no one else's", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		addClient(t, s, "c2")
		for _, c := range []store.Consent{{User: "alice", ClientID: "c1"}, {User: "alice", ClientID: "c2"}, {User: "bob", ClientID: "c1"}} {
			if err := s.PutConsent(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListConsents(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, c := range list {
			keys = append(keys, c.User+"/"+c.ClientID)
		}
		if diff := cmp.Diff([]string{"alice/c2"}, keys); diff != "" {
			t.Errorf("consents left (-want +got):\n%s", diff)
		}
	})
}
