package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/store"
)

// LoginStorage is what the login rules exercise: signed-in browser
// sessions, pending authorization requests and WebAuthn ceremonies, which
// live in the store so that every process serving the issuer sees them,
// and passkeys.
type LoginStorage interface {
	CreateSession(ctx context.Context, s store.LoginSession, max int) error
	GetSession(ctx context.Context, id string) (store.LoginSession, error)
	TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, user, keep string) (int, error)

	PutPendingAuthorization(ctx context.Context, p store.PendingAuthorization, max int) error
	GetPendingAuthorization(ctx context.Context, id string) (store.PendingAuthorization, error)
	TakePendingAuthorization(ctx context.Context, id string) (store.PendingAuthorization, error)

	CreatePasskey(ctx context.Context, p store.Passkey) error
	GetPasskey(ctx context.Context, id []byte) (store.Passkey, error)
	ListPasskeys(ctx context.Context, user string) ([]store.Passkey, error)
	UpdatePasskey(ctx context.Context, id []byte, fn func(*store.Passkey) error) error
	DeletePasskey(ctx context.Context, user string, id []byte) error
	CountPasskeys(ctx context.Context) (map[string]int, error)

	PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error
	TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error)

	CreateUser(ctx context.Context, name, password string) error
	DeleteUser(ctx context.Context, name string) error
}

// LoginFixture is one fresh, empty store under test and its clock.
type LoginFixture struct {
	Storage LoginStorage
	// Now is the store's clock; Advance moves it forward.
	Now     func() time.Time
	Advance func(d time.Duration)
}

// RunLogin runs every rule of sessions and pending authorizations against
// stores made by newFixture, each rule on a store of its own.
func RunLogin(t *testing.T, newFixture func(t *testing.T) LoginFixture) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, f LoginFixture)
	}{
		{"session: a created session comes back by its id, in UTC", testSessionRoundTrip},
		{"session: an unknown id is ErrNotFound", testSessionUnknown},
		{"session: an id cannot be created twice", testSessionDuplicate},
		{"session: an expired session is not found and cannot be touched", testSessionExpiry},
		{"session: touching moves the expiry, so a session in use outlives its first expiry", testSessionTouch},
		{"session: a deleted session is gone and deleting it again is ErrNotFound", testSessionDelete},
		{"session: ending a user's sessions keeps the one named and other users' sessions", testSessionDeleteUser},
		{"session: removing a user ends their sessions", testSessionUserRemoved},
		{"session: at the cap, expired and then least recently seen sessions make room", testSessionCap},
		{"session: at the cap, the sessions of whoever holds the most make room, so one user signing in again and again ends only their own", testSessionCapFair},
		{"session: at the cap, expired sessions make room before any live one", testSessionCapExpiredFirst},
		{"pending: a stored request comes back by its id until it expires", testPendingRoundTrip},
		{"pending: a request is taken once, and then it is gone", testPendingTakeOnce},
		{"pending: of many concurrent takes of one request exactly one gets it", testPendingTakeConcurrent},
		{"pending: putting an id again replaces the request", testPendingReplace},
		{"pending: at the cap, expired and then the oldest requests make room", testPendingCap},
		{"passkey: a created passkey comes back by its id and in its user's list", testPasskeyRoundTrip},
		{"passkey: only a known user has one, and an id is registered once, by any user", testPasskeyCreateRules},
		{"passkey: a user's list is theirs alone, oldest first, and counts are per user", testPasskeyList},
		{"passkey: an update changes counter, flags, name and last use, never the id or user", testPasskeyUpdate},
		{"passkey: a user removes their own passkey and no one else's", testPasskeyDelete},
		{"passkey: removing a user removes their passkeys", testPasskeyUserRemoved},
		{"webauthn session: its data comes back once, and not after it expires", testCeremonyOnce},
		{"webauthn session: of many concurrent takes exactly one gets it", testCeremonyConcurrent},
		{"webauthn session: at the cap, expired and then the oldest make room", testCeremonyCap},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			r.fn(t, newFixture(t))
		})
	}
}

func session(f LoginFixture, id, user string, ttl time.Duration) store.LoginSession {
	now := f.Now().UTC().Truncate(time.Second)
	return store.LoginSession{ID: id, User: user, Method: "password", CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(ttl)}
}

func mustCreateSession(t *testing.T, f LoginFixture, s store.LoginSession, max int) {
	t.Helper()
	if err := f.Storage.CreateSession(context.Background(), s, max); err != nil {
		t.Fatalf("CreateSession(%q): %v", s.ID, err)
	}
}

// liveSessions returns which of ids name a live session.
func liveSessions(t *testing.T, f LoginFixture, ids ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range ids {
		_, err := f.Storage.GetSession(context.Background(), id)
		switch {
		case err == nil:
			out[id] = true
		case errors.Is(err, store.ErrNotFound):
			out[id] = false
		default:
			t.Fatalf("GetSession(%q): %v", id, err)
		}
	}
	return out
}

func testSessionRoundTrip(t *testing.T, f LoginFixture) {
	want := session(f, "sid-1", "alice", time.Hour)
	in := want
	loc := time.FixedZone("elsewhere", 3*3600)
	in.CreatedAt, in.LastSeen, in.ExpiresAt = in.CreatedAt.In(loc), in.LastSeen.In(loc), in.ExpiresAt.In(loc)
	mustCreateSession(t, f, in, 0)
	got, err := f.Storage.GetSession(context.Background(), "sid-1")
	mustNil(t, "GetSession", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}
}

func testSessionUnknown(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	_, err := f.Storage.GetSession(ctx, "nope")
	wantErr(t, "GetSession", err, store.ErrNotFound)
	wantErr(t, "TouchSession", f.Storage.TouchSession(ctx, "nope", f.Now(), f.Now().Add(time.Hour)), store.ErrNotFound)
	wantErr(t, "DeleteSession", f.Storage.DeleteSession(ctx, "nope"), store.ErrNotFound)
}

func testSessionDuplicate(t *testing.T, f LoginFixture) {
	mustCreateSession(t, f, session(f, "sid-1", "alice", time.Hour), 0)
	err := f.Storage.CreateSession(context.Background(), session(f, "sid-1", "bob", time.Hour), 0)
	wantErr(t, "second CreateSession", err, store.ErrAlreadyExists)
	got, err := f.Storage.GetSession(context.Background(), "sid-1")
	mustNil(t, "GetSession", err)
	if got.User != "alice" {
		t.Errorf("session belongs to %q after a refused create; want alice", got.User)
	}
}

func testSessionExpiry(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	mustCreateSession(t, f, session(f, "sid-1", "alice", time.Hour), 0)
	f.Advance(time.Hour)
	_, err := f.Storage.GetSession(ctx, "sid-1")
	wantErr(t, "GetSession at the expiry", err, store.ErrNotFound)
	err = f.Storage.TouchSession(ctx, "sid-1", f.Now(), f.Now().Add(time.Hour))
	wantErr(t, "TouchSession after the expiry", err, store.ErrNotFound)
}

func testSessionTouch(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	s := session(f, "sid-1", "alice", time.Hour)
	mustCreateSession(t, f, s, 0)
	f.Advance(50 * time.Minute)
	seen := f.Now().UTC().Truncate(time.Second)
	mustNil(t, "TouchSession", f.Storage.TouchSession(ctx, "sid-1", seen, seen.Add(time.Hour)))
	f.Advance(30 * time.Minute) // past the first expiry
	got, err := f.Storage.GetSession(ctx, "sid-1")
	mustNil(t, "GetSession after touch", err)
	want := s
	want.LastSeen, want.ExpiresAt = seen, seen.Add(time.Hour)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("touched session (-want +got):\n%s", diff)
	}
}

func testSessionDelete(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	mustCreateSession(t, f, session(f, "sid-1", "alice", time.Hour), 0)
	mustCreateSession(t, f, session(f, "sid-2", "alice", time.Hour), 0)
	mustNil(t, "DeleteSession", f.Storage.DeleteSession(ctx, "sid-1"))
	wantErr(t, "second DeleteSession", f.Storage.DeleteSession(ctx, "sid-1"), store.ErrNotFound)
	if diff := cmp.Diff(map[string]bool{"sid-1": false, "sid-2": true}, liveSessions(t, f, "sid-1", "sid-2")); diff != "" {
		t.Errorf("live sessions (-want +got):\n%s", diff)
	}
}

func testSessionDeleteUser(t *testing.T, f LoginFixture) {
	for _, s := range []store.LoginSession{
		session(f, "a1", "alice", time.Hour), session(f, "a2", "alice", time.Hour),
		session(f, "a3", "alice", time.Hour), session(f, "b1", "bob", time.Hour),
	} {
		mustCreateSession(t, f, s, 0)
	}
	n, err := f.Storage.DeleteUserSessions(context.Background(), "alice", "a2")
	mustNil(t, "DeleteUserSessions", err)
	if n != 2 {
		t.Errorf("DeleteUserSessions ended %d sessions; want 2", n)
	}
	want := map[string]bool{"a1": false, "a2": true, "a3": false, "b1": true}
	if diff := cmp.Diff(want, liveSessions(t, f, "a1", "a2", "a3", "b1")); diff != "" {
		t.Errorf("live sessions (-want +got):\n%s", diff)
	}
}

func testSessionUserRemoved(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	mustNil(t, "CreateUser", f.Storage.CreateUser(ctx, "alice", "pw-alice"))
	mustNil(t, "CreateUser", f.Storage.CreateUser(ctx, "bob", "pw-bob"))
	mustCreateSession(t, f, session(f, "a1", "alice", time.Hour), 0)
	mustCreateSession(t, f, session(f, "b1", "bob", time.Hour), 0)
	mustNil(t, "DeleteUser", f.Storage.DeleteUser(ctx, "alice"))
	want := map[string]bool{"a1": false, "b1": true}
	if diff := cmp.Diff(want, liveSessions(t, f, "a1", "b1")); diff != "" {
		t.Errorf("live sessions (-want +got):\n%s", diff)
	}
}

func testSessionCap(t *testing.T, f LoginFixture) {
	const max = 10
	var ids []string
	// sid-0 expires first (least recently seen), sid-9 last; sid-x has
	// already expired.
	mustCreateSession(t, f, session(f, "sid-x", "alice", time.Minute), max)
	for i := range max - 1 {
		id := fmt.Sprintf("sid-%d", i)
		ids = append(ids, id)
		mustCreateSession(t, f, session(f, id, "alice", time.Hour+time.Duration(i)*time.Minute), max)
	}
	f.Advance(2 * time.Minute)
	mustCreateSession(t, f, session(f, "sid-new", "bob", time.Hour), max)
	live := liveSessions(t, f, append(ids, "sid-new")...)
	n := 0
	for _, ok := range live {
		if ok {
			n++
		}
	}
	if n > max {
		t.Errorf("%d live sessions with a cap of %d", n, max)
	}
	if !live["sid-new"] {
		t.Errorf("the new session was not stored at the cap")
	}
	if !live[ids[len(ids)-1]] {
		t.Errorf("the most recently seen session was evicted")
	}

	mustCreateSession(t, f, session(f, "sid-newer", "bob", time.Hour), max)
	live = liveSessions(t, f, append(ids, "sid-new", "sid-newer")...)
	n = 0
	for _, ok := range live {
		if ok {
			n++
		}
	}
	if n > max {
		t.Errorf("%d live sessions with a cap of %d", n, max)
	}
	if live[ids[0]] || !live["sid-new"] || !live["sid-newer"] {
		t.Errorf("at the cap the least recently seen session must go first; live: %v", live)
	}
}

func testSessionCapFair(t *testing.T, f LoginFixture) {
	const max = 20
	// Alice and bob signed in long ago and were seen least recently:
	// their sessions are the closest to expiry.
	others := []string{"alice-1", "alice-2", "bob-1"}
	for i, id := range others {
		mustCreateSession(t, f, session(f, id, id[:len(id)-2], time.Hour+time.Duration(i)*time.Minute), max)
	}
	// Mallory signs in over and over, each session seen later than theirs.
	var mallory []string
	for i := range 3 * max {
		id := fmt.Sprintf("mallory-%02d", i)
		mallory = append(mallory, id)
		mustCreateSession(t, f, session(f, id, "mallory", 2*time.Hour+time.Duration(i)*time.Minute), max)
	}
	live := liveSessions(t, f, append(others, mallory...)...)
	n := 0
	for _, ok := range live {
		if ok {
			n++
		}
	}
	if n > max {
		t.Errorf("%d live sessions with a cap of %d", n, max)
	}
	for _, id := range others {
		if !live[id] {
			t.Errorf("session %s was evicted by mallory's sign-ins", id)
		}
	}
	if !live[mallory[len(mallory)-1]] {
		t.Errorf("mallory's newest session was evicted")
	}
	if live[mallory[0]] {
		t.Errorf("mallory's oldest session outlived newer ones of hers")
	}
}

// testSessionCapExpiredFirst: an expired session goes before any live
// one, whoever holds it: bob's one expired session makes room for alice's
// tenth, and none of alice's live sessions ends.
func testSessionCapExpiredFirst(t *testing.T, f LoginFixture) {
	const max = 10
	mustCreateSession(t, f, session(f, "bob-1", "bob", time.Minute), max)
	var alice []string
	for i := range max - 1 {
		id := fmt.Sprintf("alice-%02d", i)
		alice = append(alice, id)
		mustCreateSession(t, f, session(f, id, "alice", 2*time.Hour+time.Duration(i)*time.Minute), max)
	}
	f.Advance(2 * time.Minute) // bob's session has expired
	alice = append(alice, "alice-last")
	mustCreateSession(t, f, session(f, "alice-last", "alice", 2*time.Hour), max)
	for id, ok := range liveSessions(t, f, alice...) {
		if !ok {
			t.Errorf("alice's live session %s ended while bob's expired one could make room", id)
		}
	}
}

func pending(f LoginFixture, id string, age time.Duration) store.PendingAuthorization {
	now := f.Now().UTC().Truncate(time.Second)
	return store.PendingAuthorization{
		ID: id, ClientID: "client-1",
		Form:      "client_id=client-1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&response_type=code",
		CreatedAt: now, ExpiresAt: now.Add(age),
	}
}

func mustPutPending(t *testing.T, f LoginFixture, p store.PendingAuthorization, max int) {
	t.Helper()
	if err := f.Storage.PutPendingAuthorization(context.Background(), p, max); err != nil {
		t.Fatalf("PutPendingAuthorization(%q): %v", p.ID, err)
	}
}

func testPendingRoundTrip(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	want := pending(f, "req-1", 10*time.Minute)
	mustPutPending(t, f, want, 0)
	got, err := f.Storage.GetPendingAuthorization(ctx, "req-1")
	mustNil(t, "GetPendingAuthorization", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetPendingAuthorization (-want +got):\n%s", diff)
	}
	_, err = f.Storage.GetPendingAuthorization(ctx, "nope")
	wantErr(t, "GetPendingAuthorization of an unknown id", err, store.ErrNotFound)
	f.Advance(10 * time.Minute)
	_, err = f.Storage.GetPendingAuthorization(ctx, "req-1")
	wantErr(t, "GetPendingAuthorization at the expiry", err, store.ErrNotFound)
	_, err = f.Storage.TakePendingAuthorization(ctx, "req-1")
	wantErr(t, "TakePendingAuthorization at the expiry", err, store.ErrNotFound)
}

func testPendingTakeOnce(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	want := pending(f, "req-1", 10*time.Minute)
	mustPutPending(t, f, want, 0)
	got, err := f.Storage.TakePendingAuthorization(ctx, "req-1")
	mustNil(t, "TakePendingAuthorization", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TakePendingAuthorization (-want +got):\n%s", diff)
	}
	_, err = f.Storage.TakePendingAuthorization(ctx, "req-1")
	wantErr(t, "second TakePendingAuthorization", err, store.ErrNotFound)
	_, err = f.Storage.GetPendingAuthorization(ctx, "req-1")
	wantErr(t, "GetPendingAuthorization after the take", err, store.ErrNotFound)
}

func testPendingTakeConcurrent(t *testing.T, f LoginFixture) {
	mustPutPending(t, f, pending(f, "req-1", 10*time.Minute), 0)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.Storage.TakePendingAuthorization(context.Background(), "req-1")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("TakePendingAuthorization: %v; want nil or ErrNotFound", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent takes got the request; want exactly 1", won, n)
	}
}

func testPendingReplace(t *testing.T, f LoginFixture) {
	mustPutPending(t, f, pending(f, "req-1", 10*time.Minute), 0)
	want := pending(f, "req-1", 20*time.Minute)
	want.Form = "client_id=client-1&scope=notes%3Aread"
	mustPutPending(t, f, want, 0)
	got, err := f.Storage.GetPendingAuthorization(context.Background(), "req-1")
	mustNil(t, "GetPendingAuthorization", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replaced request (-want +got):\n%s", diff)
	}
}

func testPendingCap(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	const max = 10
	mustPutPending(t, f, pending(f, "req-x", time.Minute), max) // expires first
	for i := range max - 1 {
		f.Advance(time.Second)
		mustPutPending(t, f, pending(f, fmt.Sprintf("req-%d", i), 10*time.Minute), max)
	}
	f.Advance(2 * time.Minute)
	mustPutPending(t, f, pending(f, "req-new", 10*time.Minute), max)
	mustPutPending(t, f, pending(f, "req-newer", 10*time.Minute), max)
	live := map[string]bool{}
	n := 0
	for _, id := range []string{"req-0", "req-8", "req-new", "req-newer"} {
		_, err := f.Storage.GetPendingAuthorization(ctx, id)
		live[id] = err == nil
	}
	for i := range max - 1 {
		if _, err := f.Storage.GetPendingAuthorization(ctx, fmt.Sprintf("req-%d", i)); err == nil {
			n++
		}
	}
	if n+2 > max {
		t.Errorf("%d pending requests with a cap of %d", n+2, max)
	}
	want := map[string]bool{"req-0": false, "req-8": true, "req-new": true, "req-newer": true}
	if diff := cmp.Diff(want, live); diff != "" {
		t.Errorf("live requests at the cap (-want +got):\n%s", diff)
	}
}

func passkey(f LoginFixture, user string, id byte) store.Passkey {
	now := f.Now().UTC().Truncate(time.Second)
	return store.Passkey{
		ID: []byte{id, 0, 1, 2, 0xff}, User: user, Name: fmt.Sprintf("key %d", id),
		PublicKey: []byte{0xa5, 1, 2, 3, 0x26, id}, SignCount: 7, AAGUID: make([]byte, 16),
		Transports: []string{"internal", "hybrid"}, UserPresent: true, UserVerified: true,
		BackupEligible: true, BackupState: false, AttestationType: "none", AttestationFormat: "none",
		CreatedAt: now,
	}
}

func loginUsers(t *testing.T, f LoginFixture, names ...string) {
	t.Helper()
	for _, n := range names {
		mustNil(t, "CreateUser "+n, f.Storage.CreateUser(context.Background(), n, "pw-"+n))
	}
}

func testPasskeyRoundTrip(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice")
	want := passkey(f, "alice", 1)
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, want))
	got, err := f.Storage.GetPasskey(ctx, want.ID)
	mustNil(t, "GetPasskey", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetPasskey (-want +got):\n%s", diff)
	}
	list, err := f.Storage.ListPasskeys(ctx, "alice")
	mustNil(t, "ListPasskeys", err)
	if diff := cmp.Diff([]store.Passkey{want}, list); diff != "" {
		t.Errorf("ListPasskeys (-want +got):\n%s", diff)
	}
	_, err = f.Storage.GetPasskey(ctx, []byte("nope"))
	wantErr(t, "GetPasskey of an unknown id", err, store.ErrNotFound)
}

func testPasskeyCreateRules(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice", "bob")
	wantErr(t, "CreatePasskey for an unknown user", f.Storage.CreatePasskey(ctx, passkey(f, "nobody", 1)), store.ErrNotFound)
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, passkey(f, "alice", 1)))
	wantErr(t, "the same id again", f.Storage.CreatePasskey(ctx, passkey(f, "alice", 1)), store.ErrAlreadyExists)
	wantErr(t, "the same id for another user", f.Storage.CreatePasskey(ctx, passkey(f, "bob", 1)), store.ErrAlreadyExists)
	got, err := f.Storage.GetPasskey(ctx, passkey(f, "alice", 1).ID)
	mustNil(t, "GetPasskey", err)
	if got.User != "alice" {
		t.Errorf("passkey belongs to %q after a refused create; want alice", got.User)
	}
}

func testPasskeyList(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice", "bob", "carol")
	a2 := passkey(f, "alice", 2)
	f.Advance(time.Minute)
	a1 := passkey(f, "alice", 1) // created later, listed later
	b3 := passkey(f, "bob", 3)
	for _, p := range []store.Passkey{a2, a1, b3} {
		mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, p))
	}
	list, err := f.Storage.ListPasskeys(ctx, "alice")
	mustNil(t, "ListPasskeys", err)
	if diff := cmp.Diff([]store.Passkey{a2, a1}, list); diff != "" {
		t.Errorf("alice's passkeys (-want +got):\n%s", diff)
	}
	list, err = f.Storage.ListPasskeys(ctx, "carol")
	mustNil(t, "ListPasskeys", err)
	if len(list) != 0 {
		t.Errorf("carol has %d passkeys; want none", len(list))
	}
	counts, err := f.Storage.CountPasskeys(ctx)
	mustNil(t, "CountPasskeys", err)
	if diff := cmp.Diff(map[string]int{"alice": 2, "bob": 1}, counts); diff != "" {
		t.Errorf("CountPasskeys (-want +got):\n%s", diff)
	}
}

func testPasskeyUpdate(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice")
	p := passkey(f, "alice", 1)
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, p))
	used := f.Now().UTC().Add(time.Hour).Truncate(time.Second)
	err := f.Storage.UpdatePasskey(ctx, p.ID, func(q *store.Passkey) error {
		q.SignCount, q.BackupState, q.Name, q.LastUsedAt = 8, true, "laptop", used
		q.ID, q.User = []byte("other"), "mallory"
		return nil
	})
	mustNil(t, "UpdatePasskey", err)
	want := p
	want.SignCount, want.BackupState, want.Name, want.LastUsedAt = 8, true, "laptop", used
	got, err := f.Storage.GetPasskey(ctx, p.ID)
	mustNil(t, "GetPasskey", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("updated passkey (-want +got):\n%s", diff)
	}
	_, err = f.Storage.GetPasskey(ctx, []byte("other"))
	wantErr(t, "GetPasskey of the id the update tried to set", err, store.ErrNotFound)
	wantErr(t, "UpdatePasskey of an unknown id", f.Storage.UpdatePasskey(ctx, []byte("nope"), func(*store.Passkey) error { return nil }), store.ErrNotFound)
	boom := errors.New("boom")
	wantErr(t, "UpdatePasskey whose fn fails", f.Storage.UpdatePasskey(ctx, p.ID, func(q *store.Passkey) error {
		q.Name = "changed"
		return boom
	}), boom)
	got, _ = f.Storage.GetPasskey(ctx, p.ID)
	if got.Name != "laptop" {
		t.Errorf("name %q after a failed update; want laptop", got.Name)
	}
}

func testPasskeyDelete(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice", "bob")
	a, b := passkey(f, "alice", 1), passkey(f, "bob", 2)
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, a))
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, b))
	wantErr(t, "bob deletes alice's passkey", f.Storage.DeletePasskey(ctx, "bob", a.ID), store.ErrNotFound)
	mustNil(t, "alice deletes hers", f.Storage.DeletePasskey(ctx, "alice", a.ID))
	wantErr(t, "deleting it again", f.Storage.DeletePasskey(ctx, "alice", a.ID), store.ErrNotFound)
	_, err := f.Storage.GetPasskey(ctx, a.ID)
	wantErr(t, "GetPasskey of the deleted passkey", err, store.ErrNotFound)
	if _, err := f.Storage.GetPasskey(ctx, b.ID); err != nil {
		t.Errorf("bob's passkey after alice deleted hers: %v", err)
	}
	counts, err := f.Storage.CountPasskeys(ctx)
	mustNil(t, "CountPasskeys", err)
	if diff := cmp.Diff(map[string]int{"bob": 1}, counts); diff != "" {
		t.Errorf("CountPasskeys (-want +got):\n%s", diff)
	}
}

func testPasskeyUserRemoved(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	loginUsers(t, f, "alice", "bob")
	a, b := passkey(f, "alice", 1), passkey(f, "bob", 2)
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, a))
	mustNil(t, "CreatePasskey", f.Storage.CreatePasskey(ctx, b))
	mustNil(t, "DeleteUser", f.Storage.DeleteUser(ctx, "alice"))
	_, err := f.Storage.GetPasskey(ctx, a.ID)
	wantErr(t, "GetPasskey of a removed user's passkey", err, store.ErrNotFound)
	if _, err := f.Storage.GetPasskey(ctx, b.ID); err != nil {
		t.Errorf("bob's passkey after alice was removed: %v", err)
	}
	loginUsers(t, f, "alice")
	list, err := f.Storage.ListPasskeys(ctx, "alice")
	mustNil(t, "ListPasskeys", err)
	if len(list) != 0 {
		t.Errorf("a new alice inherits %d passkeys; want none", len(list))
	}
}

func testCeremonyOnce(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	exp := f.Now().Add(5 * time.Minute)
	mustNil(t, "PutWebAuthnSession", f.Storage.PutWebAuthnSession(ctx, "c-1", []byte(`{"challenge":"abc"}`), exp, 0))
	mustNil(t, "PutWebAuthnSession", f.Storage.PutWebAuthnSession(ctx, "c-2", []byte("two"), exp, 0))
	got, err := f.Storage.TakeWebAuthnSession(ctx, "c-1")
	mustNil(t, "TakeWebAuthnSession", err)
	if string(got) != `{"challenge":"abc"}` {
		t.Errorf("TakeWebAuthnSession = %q; want the data put", got)
	}
	_, err = f.Storage.TakeWebAuthnSession(ctx, "c-1")
	wantErr(t, "second TakeWebAuthnSession", err, store.ErrNotFound)
	_, err = f.Storage.TakeWebAuthnSession(ctx, "nope")
	wantErr(t, "TakeWebAuthnSession of an unknown id", err, store.ErrNotFound)
	f.Advance(5 * time.Minute)
	_, err = f.Storage.TakeWebAuthnSession(ctx, "c-2")
	wantErr(t, "TakeWebAuthnSession at the expiry", err, store.ErrNotFound)
}

func testCeremonyConcurrent(t *testing.T, f LoginFixture) {
	mustNil(t, "PutWebAuthnSession", f.Storage.PutWebAuthnSession(context.Background(), "c-1", []byte("x"), f.Now().Add(time.Minute), 0))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.Storage.TakeWebAuthnSession(context.Background(), "c-1")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("TakeWebAuthnSession: %v; want nil or ErrNotFound", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent takes got the ceremony; want exactly 1", won, n)
	}
}

func testCeremonyCap(t *testing.T, f LoginFixture) {
	ctx := context.Background()
	const max = 10
	for i := range max {
		f.Advance(time.Second)
		mustNil(t, "PutWebAuthnSession", f.Storage.PutWebAuthnSession(ctx, fmt.Sprintf("c-%d", i), []byte("x"), f.Now().Add(5*time.Minute), max))
	}
	mustNil(t, "PutWebAuthnSession", f.Storage.PutWebAuthnSession(ctx, "c-new", []byte("new"), f.Now().Add(5*time.Minute), max))
	live := 0
	for i := range max {
		if _, err := f.Storage.TakeWebAuthnSession(ctx, fmt.Sprintf("c-%d", i)); err == nil {
			live++
			if i == 0 {
				t.Errorf("the oldest ceremony survived the cap")
			}
		}
	}
	if _, err := f.Storage.TakeWebAuthnSession(ctx, "c-new"); err != nil {
		t.Errorf("the new ceremony was not stored at the cap: %v", err)
	}
	if live+1 > max {
		t.Errorf("%d ceremonies kept with a cap of %d", live+1, max)
	}
}
