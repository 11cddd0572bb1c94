package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

func TestExternalUsers(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now, MaxGroup: 1})
	if err := s.CreateExternalUser(ctx, "ada@example.com", "Ada@Example.com"); err != nil {
		t.Fatal(err)
	}

	t.Run("a user without a password never authenticates with one", func(t *testing.T) {
		for _, pw := range []string{"", "x", "Ada@Example.com"} {
			if err := s.Authenticate(ctx, "ada@example.com", pw); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("Authenticate(%q): got %v; want ErrBadCredentials", pw, err)
			}
		}
	})

	t.Run("user list carries the lower-case email", func(t *testing.T) {
		if err := s.CreateUser(ctx, "bob", "bob-pw"); err != nil {
			t.Fatal(err)
		}
		users, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]string
		for _, u := range users {
			got = append(got, [2]string{u.Name, u.Email})
		}
		if diff := cmp.Diff([][2]string{{"ada@example.com", "ada@example.com"}, {"bob", ""}}, got); diff != "" {
			t.Errorf("ListUsers names and emails (-want +got):\n%s", diff)
		}
	})

	t.Run("the janitor sweeps expired sign-in states and keeps live ones", func(t *testing.T) {
		if err := s.PutIDPState(ctx, "old", []byte("x"), clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutIDPState(ctx, "new", []byte("y"), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
		st, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.SweepStats{IDPStates: 1}, st); diff != "" {
			t.Errorf("Sweep (-want +got):\n%s", diff)
		}
		if got, err := s.TakeIDPState(ctx, "new"); err != nil || string(got) != "y" {
			t.Errorf("live state after the sweep = %q, %v; want y", got, err)
		}
	})
}
