package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite/storage"

	"github.com/mcpd/mcpd/store"
)

// IdentityStorage is what RunIdentities exercises: the records of upstream
// identity providers, with the user methods they depend on.
type IdentityStorage interface {
	storage.Transactional
	store.Identities

	CreateUser(ctx context.Context, name, password string) error
	UserExists(ctx context.Context, name string) (bool, error)
	DeleteUser(ctx context.Context, name string) error
	ListUsers(ctx context.Context) ([]store.User, error)
	Authenticate(ctx context.Context, name, password string) error
}

// RunIdentities runs every identity-provider rule against stores made by
// newStore, each rule on a fresh, empty store.
func RunIdentities(t *testing.T, newStore func(t *testing.T) IdentityStorage) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, s IdentityStorage)
	}{
		{"an external user is found by email in any case and has no password", testExternalUser},
		{"user list carries each user's lower-case email", testListUsersEmail},
		{"an email address belongs to at most one user", testEmailUnique},
		{"only ASCII letters fold: an address with a character that lower-cases to ASCII is another", testEmailASCIIFold},
		{"changing or clearing a user's email frees the old address", testEmailChange},
		{"a linked identity is found by issuer and subject and listed under its user", testLinkIdentity},
		{"an identity links once, and only to a user that exists", testLinkOnce},
		{"an upstream token is kept, replaced and forgotten per user and provider", testUpstreamToken},
		{"unlinking a provider deletes the user's identities through it and its token, nothing else", testUnlinkIdentities},
		{"deleting a user deletes its identities, email and upstream tokens", testDeleteUserIdentities},
		{"a sign-in state is taken once and never after it expires", testIDPState},
		{"a user created and linked in a rolled-back transaction leaves nothing", testHalfCreatedUser},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) { r.fn(t, newStore(t)) })
	}
}

const (
	issuerA = "https://idp-a.example"
	issuerB = "https://idp-b.example"
)

func testExternalUser(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "ada@example.com", "Ada@Example.COM"))
	for _, email := range []string{"ada@example.com", "ADA@example.com", " ada@EXAMPLE.com "} {
		name, err := s.LookupUserByEmail(ctx, email)
		if err != nil || name != "ada@example.com" {
			t.Errorf("LookupUserByEmail(%q) = %q, %v; want ada@example.com, nil", email, name, err)
		}
	}
	if _, err := s.LookupUserByEmail(ctx, "bob@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupUserByEmail of an unknown address: got %v; want store.ErrNotFound", err)
	}
	if ok, err := s.UserExists(ctx, "ada@example.com"); err != nil || !ok {
		t.Errorf("UserExists = %v, %v; want true", ok, err)
	}
	for _, pw := range []string{"", "x", "ada@example.com"} {
		if err := s.Authenticate(ctx, "ada@example.com", pw); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("Authenticate(%q) of a user without a password: got %v; want store.ErrBadCredentials", pw, err)
		}
	}
	for i, bad := range []string{"", "ada", "ada@", "@example.com", "a b@example.com", "a@b@c"} {
		if err := s.CreateExternalUser(ctx, fmt.Sprintf("user%d", i), bad); !errors.Is(err, store.ErrInvalidEmail) {
			t.Errorf("CreateExternalUser with email %q: got %v; want store.ErrInvalidEmail", bad, err)
		}
	}
	if err := s.CreateExternalUser(ctx, "ada@example.com", "other@example.com"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateExternalUser with a taken name: got %v; want store.ErrAlreadyExists", err)
	}
}

func testListUsersEmail(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "ada", "Ada@Example.com"))
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	users, err := s.ListUsers(ctx)
	mustNil(t, "ListUsers", err)
	var got [][2]string
	for _, u := range users {
		got = append(got, [2]string{u.Name, u.Email})
	}
	if diff := cmp.Diff([][2]string{{"ada", "ada@example.com"}, {"bob", ""}}, got); diff != "" {
		t.Errorf("ListUsers names and emails (-want +got):\n%s", diff)
	}
}

func testEmailUnique(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "ada", "ada@example.com"))
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	if err := s.CreateExternalUser(ctx, "ada2", "ADA@example.com"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateExternalUser with a taken email: got %v; want store.ErrAlreadyExists", err)
	}
	if ok, _ := s.UserExists(ctx, "ada2"); ok {
		t.Error("a refused CreateExternalUser left the user behind")
	}
	if err := s.SetUserEmail(ctx, "bob", "ada@example.com"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("SetUserEmail to another user's address: got %v; want store.ErrAlreadyExists", err)
	}
	if err := s.SetUserEmail(ctx, "ada", "ada@example.com"); err != nil {
		t.Errorf("SetUserEmail to the user's own address: %v", err)
	}
	if err := s.SetUserEmail(ctx, "carol", "carol@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetUserEmail of an unknown user: got %v; want store.ErrNotFound", err)
	}
}

func testEmailChange(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	mustNil(t, "SetUserEmail", s.SetUserEmail(ctx, "bob", "bob@old.example"))
	mustNil(t, "SetUserEmail", s.SetUserEmail(ctx, "bob", "Bob@New.example"))
	if _, err := s.LookupUserByEmail(ctx, "bob@old.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old address after a change: got %v; want store.ErrNotFound", err)
	}
	if name, err := s.LookupUserByEmail(ctx, "bob@new.example"); err != nil || name != "bob" {
		t.Errorf("new address = %q, %v; want bob", name, err)
	}
	mustNil(t, "CreateExternalUser with the freed address", s.CreateExternalUser(ctx, "old", "bob@old.example"))
	mustNil(t, "SetUserEmail to empty", s.SetUserEmail(ctx, "bob", ""))
	if _, err := s.LookupUserByEmail(ctx, "bob@new.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("address after clearing: got %v; want store.ErrNotFound", err)
	}
}

func testLinkIdentity(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	created := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	a := store.Identity{Issuer: issuerA, Subject: "42", Provider: "corp", User: "bob", Email: "bob@example.com", CreatedAt: created}
	b := store.Identity{Issuer: issuerB, Subject: "42", Provider: "github", User: "bob", CreatedAt: created}
	mustNil(t, "LinkIdentity a", s.LinkIdentity(ctx, b))
	mustNil(t, "LinkIdentity b", s.LinkIdentity(ctx, a))
	got, err := s.LookupIdentity(ctx, issuerA, "42")
	mustNil(t, "LookupIdentity", err)
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("LookupIdentity (-want +got):\n%s", diff)
	}
	for _, k := range [][2]string{{issuerA, "43"}, {issuerA + "/", "42"}, {"", ""}} {
		if _, err := s.LookupIdentity(ctx, k[0], k[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupIdentity(%q, %q): got %v; want store.ErrNotFound", k[0], k[1], err)
		}
	}
	list, err := s.ListIdentities(ctx, "bob")
	mustNil(t, "ListIdentities", err)
	if diff := cmp.Diff([]store.Identity{a, b}, list); diff != "" {
		t.Errorf("ListIdentities, sorted by issuer (-want +got):\n%s", diff)
	}
	if list, err := s.ListIdentities(ctx, "nobody"); err != nil || len(list) != 0 {
		t.Errorf("ListIdentities of an unknown user = %v, %v; want none", list, err)
	}
}

func testLinkOnce(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	mustNil(t, "CreateUser", s.CreateUser(ctx, "eve", "eve-pw"))
	id := store.Identity{Issuer: issuerA, Subject: "42", Provider: "corp", User: "bob"}
	mustNil(t, "LinkIdentity", s.LinkIdentity(ctx, id))
	id.User = "eve"
	if err := s.LinkIdentity(ctx, id); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("linking a linked identity to another user: got %v; want store.ErrAlreadyExists", err)
	}
	if got, _ := s.LookupIdentity(ctx, issuerA, "42"); got.User != "bob" {
		t.Errorf("identity now belongs to %q; want bob", got.User)
	}
	other := store.Identity{Issuer: issuerA, Subject: "7", Provider: "corp", User: "nobody"}
	if err := s.LinkIdentity(ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("linking to an unknown user: got %v; want store.ErrNotFound", err)
	}
}

func testUpstreamToken(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateUser", s.CreateUser(ctx, "bob", "bob-pw"))
	if _, err := s.GetUpstreamToken(ctx, "bob", "corp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUpstreamToken before any: got %v; want store.ErrNotFound", err)
	}
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, "bob", "corp", []byte("sealed-1")))
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, "bob", "github", []byte("sealed-gh")))
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, "bob", "corp", []byte("sealed-2")))
	for provider, want := range map[string]string{"corp": "sealed-2", "github": "sealed-gh"} {
		got, err := s.GetUpstreamToken(ctx, "bob", provider)
		if err != nil || string(got) != want {
			t.Errorf("GetUpstreamToken(bob, %s) = %q, %v; want %q", provider, got, err, want)
		}
	}
	mustNil(t, "DeleteUpstreamToken", s.DeleteUpstreamToken(ctx, "bob", "corp"))
	mustNil(t, "DeleteUpstreamToken again", s.DeleteUpstreamToken(ctx, "bob", "corp"))
	if _, err := s.GetUpstreamToken(ctx, "bob", "corp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUpstreamToken after delete: got %v; want store.ErrNotFound", err)
	}
	if got, err := s.GetUpstreamToken(ctx, "bob", "github"); err != nil || string(got) != "sealed-gh" {
		t.Errorf("the other provider's token = %q, %v; want it kept", got, err)
	}
	if err := s.PutUpstreamToken(ctx, "nobody", "corp", []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutUpstreamToken for an unknown user: got %v; want store.ErrNotFound", err)
	}
}

func testDeleteUserIdentities(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "bob", "bob@example.com"))
	mustNil(t, "CreateUser", s.CreateUser(ctx, "eve", "eve-pw"))
	mustNil(t, "LinkIdentity", s.LinkIdentity(ctx, store.Identity{Issuer: issuerA, Subject: "1", Provider: "corp", User: "bob"}))
	mustNil(t, "LinkIdentity", s.LinkIdentity(ctx, store.Identity{Issuer: issuerA, Subject: "2", Provider: "corp", User: "eve"}))
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, "bob", "corp", []byte("bob's")))
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, "eve", "corp", []byte("eve's")))
	mustNil(t, "DeleteUser", s.DeleteUser(ctx, "bob"))

	if _, err := s.LookupIdentity(ctx, issuerA, "1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("identity of a deleted user: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.LookupUserByEmail(ctx, "bob@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("email of a deleted user: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.GetUpstreamToken(ctx, "bob", "corp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("upstream token of a deleted user: got %v; want store.ErrNotFound", err)
	}
	if id, err := s.LookupIdentity(ctx, issuerA, "2"); err != nil || id.User != "eve" {
		t.Errorf("another user's identity = %+v, %v; want it kept", id, err)
	}
	if tok, err := s.GetUpstreamToken(ctx, "eve", "corp"); err != nil || string(tok) != "eve's" {
		t.Errorf("another user's token = %q, %v; want it kept", tok, err)
	}
	// A new user of the same name starts with nothing of the old one.
	mustNil(t, "CreateExternalUser again", s.CreateExternalUser(ctx, "bob", "bob@example.com"))
	if list, err := s.ListIdentities(ctx, "bob"); err != nil || len(list) != 0 {
		t.Errorf("identities of the re-created user = %v, %v; want none", list, err)
	}
	mustNil(t, "relinking the old identity", s.LinkIdentity(ctx, store.Identity{Issuer: issuerA, Subject: "1", Provider: "corp", User: "bob"}))
}

func testIDPState(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	exp := time.Now().Add(10 * time.Minute)
	mustNil(t, "PutIDPState", s.PutIDPState(ctx, "state-1", []byte(`{"p":"corp"}`), exp))
	if err := s.PutIDPState(ctx, "state-1", []byte("other"), exp); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("PutIDPState of a state in use: got %v; want store.ErrAlreadyExists", err)
	}
	got, err := s.TakeIDPState(ctx, "state-1")
	if err != nil || string(got) != `{"p":"corp"}` {
		t.Errorf("TakeIDPState = %q, %v; want the data", got, err)
	}
	if _, err := s.TakeIDPState(ctx, "state-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeIDPState a second time: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.TakeIDPState(ctx, "never-put"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeIDPState of an unknown state: got %v; want store.ErrNotFound", err)
	}
	mustNil(t, "PutIDPState expired", s.PutIDPState(ctx, "state-2", []byte("x"), time.Now().Add(-time.Second)))
	if _, err := s.TakeIDPState(ctx, "state-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeIDPState of an expired state: got %v; want store.ErrNotFound", err)
	}
}

func testHalfCreatedUser(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	tctx, err := s.BeginTX(ctx)
	mustNil(t, "BeginTX", err)
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(tctx, "ada@example.com", "ada@example.com"))
	mustNil(t, "LinkIdentity", s.LinkIdentity(tctx, store.Identity{Issuer: issuerA, Subject: "9", Provider: "corp", User: "ada@example.com"}))
	mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(tctx, "ada@example.com", "corp", []byte("sealed")))
	mustNil(t, "Rollback", s.Rollback(tctx))

	if ok, err := s.UserExists(ctx, "ada@example.com"); err != nil || ok {
		t.Errorf("UserExists after rollback = %v, %v; want false", ok, err)
	}
	if _, err := s.LookupUserByEmail(ctx, "ada@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("email after rollback: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.LookupIdentity(ctx, issuerA, "9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("identity after rollback: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.GetUpstreamToken(ctx, "ada@example.com", "corp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("upstream token after rollback: got %v; want store.ErrNotFound", err)
	}
	mustNil(t, "CreateExternalUser after rollback", s.CreateExternalUser(ctx, "ada@example.com", "ada@example.com"))
}

// testEmailASCIIFold: the Kelvin sign (U+212A) lower-cases to k and
// folds with K, the long s (U+017F) folds with s. An address a provider
// vouches for with one of them must not reach the user of the ASCII
// address.
func testEmailASCIIFold(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "kate", "Kate@Sales.example"))
	for _, email := range []string{"\u212Aate@sales.example", "kate@\u017Fales.example", "KATE@SALE\u017F.EXAMPLE"} {
		if name, err := s.LookupUserByEmail(ctx, email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupUserByEmail(%q) = %q, %v; want store.ErrNotFound", email, name, err)
		}
	}
	if err := s.CreateExternalUser(ctx, "\u212Aate", "\u212Aate@sales.example"); err != nil {
		t.Errorf("CreateExternalUser of the Kelvin-sign address: %v; want it to be another address", err)
	}
	if name, err := s.LookupUserByEmail(ctx, "KATE@sales.EXAMPLE"); err != nil || name != "kate" {
		t.Errorf("LookupUserByEmail in ASCII upper case = %q, %v; want kate", name, err)
	}
	if e, err := store.NormalizeEmail(" \u212Aate@Sales.Example "); err != nil || e != "\u212Aate@sales.example" {
		t.Errorf("NormalizeEmail = %q, %v; want the Kelvin sign kept and ASCII folded", e, err)
	}
}

func testUnlinkIdentities(t *testing.T, s IdentityStorage) {
	ctx := context.Background()
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "bob", "bob@example.com"))
	mustNil(t, "CreateExternalUser", s.CreateExternalUser(ctx, "eve", "eve@example.com"))
	for _, id := range []store.Identity{
		{Issuer: issuerA, Subject: "b1", Provider: "a", User: "bob"},
		{Issuer: issuerA, Subject: "b2", Provider: "a", User: "bob"},
		{Issuer: issuerB, Subject: "b3", Provider: "b", User: "bob"},
		{Issuer: issuerA, Subject: "e1", Provider: "a", User: "eve"},
	} {
		mustNil(t, "LinkIdentity", s.LinkIdentity(ctx, id))
	}
	for _, k := range []struct{ user, provider string }{{"bob", "a"}, {"bob", "b"}, {"eve", "a"}} {
		mustNil(t, "PutUpstreamToken", s.PutUpstreamToken(ctx, k.user, k.provider, []byte("sealed-"+k.user+k.provider)))
	}

	n, err := s.UnlinkIdentities(ctx, "bob", "a")
	if err != nil || n != 2 {
		t.Fatalf("UnlinkIdentities(bob, a) = %d, %v; want 2, nil", n, err)
	}
	for _, sub := range []string{"b1", "b2"} {
		if _, err := s.LookupIdentity(ctx, issuerA, sub); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupIdentity(%s) after unlinking: got %v; want store.ErrNotFound", sub, err)
		}
	}
	if list, err := s.ListIdentities(ctx, "bob"); err != nil || len(list) != 1 || list[0].Subject != "b3" {
		t.Errorf("bob's identities = %+v, %v; want only b3", list, err)
	}
	if _, err := s.GetUpstreamToken(ctx, "bob", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's token at a: got %v; want store.ErrNotFound", err)
	}
	if _, err := s.GetUpstreamToken(ctx, "bob", "b"); err != nil {
		t.Errorf("bob's token at b: %v; want it kept", err)
	}
	if id, err := s.LookupIdentity(ctx, issuerA, "e1"); err != nil || id.User != "eve" {
		t.Errorf("eve's identity = %+v, %v; want it kept", id, err)
	}
	if _, err := s.GetUpstreamToken(ctx, "eve", "a"); err != nil {
		t.Errorf("eve's token at a: %v; want it kept", err)
	}
	if name, err := s.LookupUserByEmail(ctx, "bob@example.com"); err != nil || name != "bob" {
		t.Errorf("bob's email = %q, %v; want it kept", name, err)
	}
	mustNil(t, "LinkIdentity again", s.LinkIdentity(ctx, store.Identity{Issuer: issuerA, Subject: "b1", Provider: "a", User: "eve"}))
	if n, err := s.UnlinkIdentities(ctx, "bob", "a"); err != nil || n != 0 {
		t.Errorf("unlinking again = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.UnlinkIdentities(ctx, "nobody", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unlinking an unknown user: got %v; want store.ErrNotFound", err)
	}
}
