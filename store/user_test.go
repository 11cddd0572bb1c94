package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

func TestUsers(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &store.Options{Now: clk.Now, MaxGroup: 1})
	if err := s.CreateUser(ctx, "alice", "correct horse"); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	clk.Advance(time.Minute)

	t.Run("the right password authenticates", func(t *testing.T) {
		if err := s.Authenticate(ctx, "alice", "correct horse"); err != nil {
			t.Errorf("got %v; want nil", err)
		}
	})

	t.Run("a wrong password or an unknown user is ErrBadCredentials", func(t *testing.T) {
		for _, c := range []struct{ name, password string }{
			{"alice", "correct horse "}, {"mallory", "correct horse"}, {"", "x"},
		} {
			if err := s.Authenticate(ctx, c.name, c.password); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("Authenticate(%q, %q): got %v; want ErrBadCredentials", c.name, c.password, err)
			}
		}
	})

	t.Run("an unknown user costs an argon2id run like a wrong password", func(t *testing.T) {
		known, unknown := argonBytes(t, s, "alice"), argonBytes(t, s, "mallory")
		if known < 16<<20 {
			t.Fatalf("a wrong password allocated %d bytes; want an argon2id run (≥ 16 MiB)", known)
		}
		if unknown < known*9/10 {
			t.Errorf("an unknown user allocated %d bytes, a wrong password %d; want the same argon2id run", unknown, known)
		}
	})

	t.Run("the file holds an argon2id hash, not the password", func(t *testing.T) {
		raw, err := os.ReadFile(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("correct horse")) {
			t.Errorf("database holds the password")
		}
		if !bytes.Contains(raw, []byte("$argon2id$v=19$m=19456,t=2,p=1$")) {
			t.Errorf("database holds no argon2id hash with the OWASP parameters")
		}
	})

	t.Run("a taken name is ErrAlreadyExists", func(t *testing.T) {
		if err := s.CreateUser(ctx, "alice", "x"); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("got %v; want ErrAlreadyExists", err)
		}
	})

	t.Run("empty names and passwords and names with white space, ':', control characters or bad UTF-8 are refused", func(t *testing.T) {
		for _, c := range []struct{ name, password string }{
			{"", "pw"}, {"bob", ""}, {"bo b", "pw"}, {"bob\t", "pw"}, {"bob:x", "pw"}, {"bob\n", "pw"},
			{"bob\x00", "pw"}, {"bob\xff", "pw"}, {"b\xed\xa0\x80ob", "pw"}, {"bob\u202e", "pw"}, {"bob\u2067", "pw"},
		} {
			if err := s.CreateUser(ctx, c.name, c.password); !errors.Is(err, store.ErrInvalidUser) {
				t.Errorf("CreateUser(%q, %q): got %v; want ErrInvalidUser", c.name, c.password, err)
			}
		}
	})

	t.Run("a new password replaces the old one", func(t *testing.T) {
		if err := s.CreateUser(ctx, "carol", "old"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, "carol", "new"); err != nil {
			t.Fatal(err)
		}
		if err := s.Authenticate(ctx, "carol", "old"); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("old password: got %v; want ErrBadCredentials", err)
		}
		if err := s.Authenticate(ctx, "carol", "new"); err != nil {
			t.Errorf("new password: got %v; want nil", err)
		}
		if err := s.SetPassword(ctx, "nobody", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetPassword of an unknown user: got %v; want ErrNotFound", err)
		}
	})

	t.Run("list is sorted by name, with times and no hash", func(t *testing.T) {
		got, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t0 := newClock().Now()
		want := []store.User{
			{Name: "alice", CreatedAt: t0, UpdatedAt: t0},
			{Name: "carol", CreatedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(time.Minute)},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListUsers (-want +got):\n%s", diff)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers: got %d, %v; want 2", n, err)
		}
		if ok, err := s.UserExists(ctx, "carol"); err != nil || !ok {
			t.Errorf("UserExists(carol): got %v, %v; want true", ok, err)
		}
		if ok, err := s.UserExists(ctx, "nobody"); err != nil || ok {
			t.Errorf("UserExists(nobody): got %v, %v; want false", ok, err)
		}
	})

	t.Run("deleting a user ends their grants and removes their consents and notes", func(t *testing.T) {
		addClient(t, s, "c1")
		issuePair(t, s, newGrant("g-carol", "c1", "carol"), "at-carol", "rt-carol")
		issuePair(t, s, newGrant("g-alice", "c1", "alice"), "at-alice", "rt-alice")
		if err := s.PutConsent(ctx, store.Consent{User: "carol", ClientID: "c1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveNote(ctx, "carol", store.Note{Title: "t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveNote(ctx, "alice", store.Note{Title: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at-carol", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("carol's access token: got %v; want fosite.ErrNotFound", err)
		}
		if !accessAlive(s, "at-alice") {
			t.Errorf("alice's access token died")
		}
		if _, err := s.GetConsent(ctx, "carol", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("carol's consent: got %v; want ErrNotFound", err)
		}
		if notes, _ := s.ListNotes(ctx, "carol"); len(notes) != 0 {
			t.Errorf("carol's notes: got %d; want 0", len(notes))
		}
		if notes, _ := s.ListNotes(ctx, "alice"); len(notes) != 1 {
			t.Errorf("alice's notes: got %d; want 1", len(notes))
		}
		if err := s.Authenticate(ctx, "carol", "new"); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("deleted user logs in: got %v; want ErrBadCredentials", err)
		}
		if err := s.DeleteUser(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteUser: got %v; want ErrNotFound", err)
		}
	})
}

func TestUserWithoutPassword(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	if err := s.CreateUser(ctx, "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePasswordlessUser(ctx, "dana"); err != nil {
		t.Fatal(err)
	}

	t.Run("no password ever authenticates, the empty one included", func(t *testing.T) {
		for _, pw := range []string{"", "x", "correct horse"} {
			if err := s.Authenticate(ctx, "dana", pw); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("Authenticate(dana, %q): got %v; want ErrBadCredentials", pw, err)
			}
		}
	})

	t.Run("refusing costs an argon2id run like a wrong password", func(t *testing.T) {
		known, none := argonBytes(t, s, "alice"), argonBytes(t, s, "dana")
		if none < known*9/10 {
			t.Errorf("a user without a password allocated %d bytes, a wrong password %d; want the same argon2id run", none, known)
		}
	})

	t.Run("HasPassword tells them apart", func(t *testing.T) {
		for name, want := range map[string]bool{"alice": true, "dana": false} {
			if got, err := s.HasPassword(ctx, name); err != nil || got != want {
				t.Errorf("HasPassword(%s): got %v, %v; want %v", name, got, err, want)
			}
		}
		if _, err := s.HasPassword(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("HasPassword(nobody): got %v; want ErrNotFound", err)
		}
	})

	t.Run("setting a password gives them one", func(t *testing.T) {
		if err := s.SetPassword(ctx, "dana", "now one"); err != nil {
			t.Fatal(err)
		}
		if err := s.Authenticate(ctx, "dana", "now one"); err != nil {
			t.Errorf("Authenticate after SetPassword: %v", err)
		}
	})
}

// argonBytes returns the bytes Authenticate(name, "wrong") allocates, the
// least of three runs. argon2id's cost is its memory: every run fills
// argonMemoryKiB of fresh blocks, so bytes allocated measure that work
// without reading a clock, which a loaded machine would skew.
func argonBytes(t *testing.T, s *store.Store, name string) uint64 {
	t.Helper()
	least := uint64(1<<64 - 1)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_ = s.Authenticate(context.Background(), name, "wrong")
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
