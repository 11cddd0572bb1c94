package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

func TestNotes(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now})
	save := func(owner string, n store.Note) store.Note {
		t.Helper()
		got, err := s.SaveNote(ctx, owner, n)
		if err != nil {
			t.Fatalf("SaveNote: %v", err)
		}
		clk.Advance(time.Minute)
		return got
	}
	groceries := save("alice", store.Note{Title: "Groceries", Body: "Milk and EGGS", Tags: []string{"home"}})
	meeting := save("alice", store.Note{Title: "Meeting", Body: "Quarterly plan", Tags: []string{"work", "Planning"}})
	bobs := save("bob", store.Note{Title: "Bob's groceries", Body: "eggs"})

	ids := func(ns []store.Note) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Title)
		}
		return out
	}

	t.Run("a new note gets a random id and both times", func(t *testing.T) {
		if groceries.ID == "" || groceries.ID == meeting.ID {
			t.Errorf("ids %q and %q; want distinct non-empty ids", groceries.ID, meeting.ID)
		}
		if !groceries.CreatedAt.Equal(newClock().Now()) || !groceries.UpdatedAt.Equal(groceries.CreatedAt) {
			t.Errorf("times %v/%v; want both the creation time", groceries.CreatedAt, groceries.UpdatedAt)
		}
		got, err := s.GetNote(ctx, "alice", groceries.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(groceries, got); diff != "" {
			t.Errorf("GetNote (-want +got):\n%s", diff)
		}
	})

	t.Run("no owner sees another owner's note", func(t *testing.T) {
		if _, err := s.GetNote(ctx, "bob", groceries.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetNote: got %v; want ErrNotFound", err)
		}
		if _, err := s.SaveNote(ctx, "bob", store.Note{ID: groceries.ID, Title: "stolen"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SaveNote over another's id: got %v; want ErrNotFound", err)
		}
		if err := s.DeleteNote(ctx, "bob", groceries.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteNote of another's id: got %v; want ErrNotFound", err)
		}
		got, _ := s.ListNotes(ctx, "bob")
		if diff := cmp.Diff([]string{bobs.Title}, ids(got)); diff != "" {
			t.Errorf("ListNotes(bob) (-want +got):\n%s", diff)
		}
	})

	t.Run("search needs every word, in any case, in title, body or tags", func(t *testing.T) {
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"eggs", []string{"Groceries"}},
			{"MILK eggs", []string{"Groceries"}},
			{"milk plan", nil},
			{"planning", []string{"Meeting"}},
			{"home", []string{"Groceries"}},
			{"", []string{"Meeting", "Groceries"}},
		} {
			got, err := s.SearchNotes(ctx, "alice", c.query)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, ids(got)); diff != "" {
				t.Errorf("SearchNotes(%q) (-want +got):\n%s", c.query, diff)
			}
		}
	})

	t.Run("an update keeps CreatedAt and moves the note first", func(t *testing.T) {
		upd := save("alice", store.Note{ID: groceries.ID, Title: "Groceries", Body: "Milk, eggs, bread"})
		if !upd.CreatedAt.Equal(groceries.CreatedAt) || !upd.UpdatedAt.After(groceries.UpdatedAt) {
			t.Errorf("times %v/%v; want CreatedAt %v kept and UpdatedAt later", upd.CreatedAt, upd.UpdatedAt, groceries.CreatedAt)
		}
		got, _ := s.ListNotes(ctx, "alice")
		if diff := cmp.Diff([]string{"Groceries", "Meeting"}, ids(got)); diff != "" {
			t.Errorf("ListNotes (-want +got):\n%s", diff)
		}
		if _, err := s.SaveNote(ctx, "alice", store.Note{ID: "no-such-id", Title: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update of an unknown id: got %v; want ErrNotFound", err)
		}
	})

	t.Run("delete removes the note, a second delete is ErrNotFound", func(t *testing.T) {
		if err := s.DeleteNote(ctx, "alice", meeting.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetNote(ctx, "alice", meeting.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetNote after delete: got %v; want ErrNotFound", err)
		}
		if err := s.DeleteNote(ctx, "alice", meeting.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteNote: got %v; want ErrNotFound", err)
		}
	})

	t.Run("a client-credentials principal has notes of its own", func(t *testing.T) {
		n := save("client:c1", store.Note{Title: "from a robot"})
		got, _ := s.ListNotes(ctx, "client:c1")
		if diff := cmp.Diff([]store.Note{n}, got); diff != "" {
			t.Errorf("ListNotes (-want +got):\n%s", diff)
		}
	})
}
