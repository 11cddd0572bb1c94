package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// Clock is the settable clock a backend under RunBackend reads.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at a fixed instant with nanoseconds, so a
// backend that drops precision shows it.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// OpenBackend opens a fresh, empty backend whose clock is now (its
// Options.Now), closed when the test ends.
type OpenBackend func(t *testing.T, now func() time.Time) store.Backend

// RunBackend runs every rule of store.Backend against backends made by
// open, each rule on a backend of its own: users, clients, consents,
// notes, grants and their revocation, token lookups, refresh successors,
// single-use codes, rotation races, JTIs, secrets, LockKey, the janitor
// and transactions. The fosite rules are Run's and RunTransactional's; a
// backend runs all three.
func RunBackend(t *testing.T, open OpenBackend) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, b store.Backend, clk *Clock)
	}{
		{"users: a created user authenticates with its password and no other", testUserAuth},
		{"users: taken names, bad names and empty passwords are refused", testUserRefused},
		{"users: a new password replaces the old one and keeps CreatedAt", testUserPassword},
		{"users: the list is sorted by name in byte order, with counts and existence", testUserList},
		{"users: deleting a user ends their grants and deletes their consents and notes, nothing of others", testUserDelete},
		{"clients: every field of a client round-trips", testClientRoundTrip},
		{"clients: a taken id is ErrAlreadyExists and CreatedAt defaults to the clock", testClientCreate},
		{"clients: UpdateClient applies the function, aborts on its error and keeps the id", testClientUpdate},
		{"clients: concurrent updates of one client lose none", testClientUpdateConcurrent},
		{"clients: deleting a client ends its grants and consents, nothing of others", testClientDelete},
		{"clients: the list is oldest first, then by id, with a count", testClientList},
		{"consents: a consent round-trips, is replaced, and is gone once expired", testConsent},
		{"consents: the list is by user then client, of one user or all, without expired ones", testConsentList},
		{"notes: a note is created, updated keeping CreatedAt, and deleted; owners never see each other's", testNotes},
		{"notes: search matches every word in title, body or tags, most recently updated first", testNoteSearch},
		{"grants: revoking a client's or a subject's grants kills their tokens, counts grants, leaves others", testRevokeGrants},
		{"grants: live grants count access tokens and active refresh tokens that have not expired", testLiveGrants},
		{"lookup: an access token's record is read without the request, until it goes", testLookupAccessToken},
		{"lookup: a token looked up before is refused at once after each kind of revocation", testLookupAfterRevocation},
		{"successors: a successor is kept until it expires", testSuccessor},
		{"codes: a code is used once; of concurrent invalidations exactly one wins", testCodeSingleUse},
		{"rotation: of concurrent rotations of one refresh token exactly one wins", testRotationRace},
		{"jtis: of concurrent first uses of one jti exactly one wins", testJTIRace},
		{"secrets: a secret is made once and the same bytes come back, even to racing callers", testSecret},
		{"locks: holders of one key never overlap, other keys do not wait, and a wait ends with its context", testLockKey},
		{"janitor: a sweep removes what expired and stale registrations, and keeps the rest", testSweep},
		{"transactions: a sentinel error inside a transaction leaves it usable", testTxSentinel},
		{"transactions: writes are invisible outside until commit; a nested rollback fails the commit", testTxIsolation},
		{"text: ids with NUL bytes or invalid UTF-8 name nothing", testBadText},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			clk := NewClock()
			r.fn(t, open(t, clk.Now), clk)
		})
	}
}

var bg = context.Background()

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantIs(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: got error %v; want %v", what, got, want)
	}
}

// newClient registers a public dynamic client.
func newClient(t *testing.T, b store.Backend, id string) {
	t.Helper()
	must(t, "CreateClient "+id, b.CreateClient(bg, &store.Client{
		ID: id, Name: "client " + id, RedirectURIs: []string{"http://127.0.0.1/"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"notes:read", "notes:write"}, TokenEndpointAuthMethod: "none", Source: store.SourceDynamic,
	}))
}

func accessAlive(b store.Backend, access string) bool {
	_, err := b.GetAccessTokenSession(bg, access, proto())
	return err == nil
}

func testUserAuth(t *testing.T, b store.Backend, _ *Clock) {
	must(t, "CreateUser", b.CreateUser(bg, "alice", "correct horse"))
	if err := b.Authenticate(bg, "alice", "correct horse"); err != nil {
		t.Errorf("Authenticate with the right password: got %v; want nil", err)
	}
	for _, c := range []struct{ name, password string }{
		{"alice", "correct horse "}, {"alice", ""}, {"mallory", "correct horse"}, {"", "x"},
	} {
		wantIs(t, fmt.Sprintf("Authenticate(%q, %q)", c.name, c.password), b.Authenticate(bg, c.name, c.password), store.ErrBadCredentials)
	}
}

func testUserRefused(t *testing.T, b store.Backend, _ *Clock) {
	must(t, "CreateUser", b.CreateUser(bg, "alice", "pw"))
	wantIs(t, "CreateUser of a taken name", b.CreateUser(bg, "alice", "other"), store.ErrAlreadyExists)
	for _, c := range []struct{ name, password string }{
		{"", "pw"}, {"bob", ""}, {"bo b", "pw"}, {"bob\t", "pw"}, {"bob:x", "pw"}, {"bob\n", "pw"}, {"bob\x00", "pw"}, {"b\xffob", "pw"},
		{"bob\u202e", "pw"}, {"b\u2067ob", "pw"}, // bidirectional controls
	} {
		wantIs(t, fmt.Sprintf("CreateUser(%q, %q)", c.name, c.password), b.CreateUser(bg, c.name, c.password), store.ErrInvalidUser)
	}
	if n, err := b.CountUsers(bg); err != nil || n != 1 {
		t.Errorf("CountUsers after the refusals: got %d, %v; want 1", n, err)
	}
}

func testUserPassword(t *testing.T, b store.Backend, clk *Clock) {
	created := clk.Now()
	must(t, "CreateUser", b.CreateUser(bg, "carol", "old"))
	clk.Advance(time.Minute)
	must(t, "SetPassword", b.SetPassword(bg, "carol", "new"))
	wantIs(t, "old password", b.Authenticate(bg, "carol", "old"), store.ErrBadCredentials)
	if err := b.Authenticate(bg, "carol", "new"); err != nil {
		t.Errorf("new password: got %v; want nil", err)
	}
	wantIs(t, "SetPassword of an unknown user", b.SetPassword(bg, "nobody", "x"), store.ErrNotFound)
	wantIs(t, "SetPassword to an empty password", b.SetPassword(bg, "carol", ""), store.ErrInvalidUser)
	users, err := b.ListUsers(bg)
	must(t, "ListUsers", err)
	want := []store.User{{Name: "carol", CreatedAt: created, UpdatedAt: created.Add(time.Minute)}}
	if diff := cmp.Diff(want, users); diff != "" {
		t.Errorf("ListUsers (-want +got):\n%s", diff)
	}
}

func testUserList(t *testing.T, b store.Backend, clk *Clock) {
	t0 := clk.Now()
	// Byte order: upper case before lower case, é after z.
	for _, name := range []string{"émile", "bob", "Zoe", "alice"} {
		must(t, "CreateUser "+name, b.CreateUser(bg, name, "pw"))
	}
	got, err := b.ListUsers(bg)
	must(t, "ListUsers", err)
	var want []store.User
	for _, name := range []string{"Zoe", "alice", "bob", "émile"} {
		want = append(want, store.User{Name: name, CreatedAt: t0, UpdatedAt: t0})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListUsers (-want +got):\n%s", diff)
	}
	if n, err := b.CountUsers(bg); err != nil || n != 4 {
		t.Errorf("CountUsers: got %d, %v; want 4", n, err)
	}
	if ok, err := b.UserExists(bg, "émile"); err != nil || !ok {
		t.Errorf("UserExists(émile): got %v, %v; want true", ok, err)
	}
	if ok, err := b.UserExists(bg, "Alice"); err != nil || ok {
		t.Errorf("UserExists(Alice): got %v, %v; want false (names are case-sensitive)", ok, err)
	}
}

func testUserDelete(t *testing.T, b store.Backend, _ *Clock) {
	must(t, "CreateUser", b.CreateUser(bg, "carol", "pw"))
	must(t, "CreateUser", b.CreateUser(bg, "alice", "pw"))
	newClient(t, b, "c1")
	atC, rtC := issue(t, b, grant{"g-carol", "c1", "carol"}, 1)
	atA, rtA := issue(t, b, grant{"g-alice", "c1", "alice"}, 1)
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "carol", ClientID: "c1", Scopes: []string{"notes:read"}}))
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "alice", ClientID: "c1", Scopes: []string{"notes:read"}}))
	_, err := b.SaveNote(bg, "carol", store.Note{Title: "carol's"})
	must(t, "SaveNote", err)
	_, err = b.SaveNote(bg, "alice", store.Note{Title: "alice's"})
	must(t, "SaveNote", err)

	must(t, "DeleteUser", b.DeleteUser(bg, "carol"))
	dead(t, b, "carol's grant", atC, rtC)
	alive(t, b, "alice's grant", atA, rtA)
	wantIs(t, "carol's consent", firstErr(b.GetConsent(bg, "carol", "c1")), store.ErrNotFound)
	if _, err := b.GetConsent(bg, "alice", "c1"); err != nil {
		t.Errorf("alice's consent: got %v; want it kept", err)
	}
	if notes, err := b.ListNotes(bg, "carol"); err != nil || len(notes) != 0 {
		t.Errorf("carol's notes: got %d, %v; want none", len(notes), err)
	}
	if notes, err := b.ListNotes(bg, "alice"); err != nil || len(notes) != 1 {
		t.Errorf("alice's notes: got %d, %v; want 1", len(notes), err)
	}
	wantIs(t, "the deleted user logs in", b.Authenticate(bg, "carol", "pw"), store.ErrBadCredentials)
	wantIs(t, "a second DeleteUser", b.DeleteUser(bg, "carol"), store.ErrNotFound)
}

func firstErr[T any](_ T, err error) error { return err }

// fullClient returns a client with every field set to a value of its own,
// times with nanoseconds, so a field a backend forgets to keep shows up.
// A field of a kind it does not know fails the test: teach it the kind.
func fullClient(t *testing.T, id string) *store.Client {
	t.Helper()
	c := &store.Client{}
	v := reflect.ValueOf(c).Elem()
	base := time.Date(2026, 5, 6, 7, 8, 9, 987654321, time.UTC)
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(base.Add(time.Duration(i) * time.Hour)))
		case f.Kind() == reflect.String:
			f.SetString("v-" + name)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
			f.SetBytes([]byte("b-" + name))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf([]string{"a-" + name, "b-" + name}))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("fullClient: field %s of type %s: teach storetest to fill it", name, f.Type())
		}
	}
	c.ID = id
	return c
}

func testClientRoundTrip(t *testing.T, b store.Backend, _ *Clock) {
	want := fullClient(t, "client-full")
	must(t, "CreateClient", b.CreateClient(bg, want))
	got, err := b.LookupClient(bg, want.ID)
	must(t, "LookupClient", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LookupClient (-want +got):\n%s", diff)
	}
	// The caller owns what it got: changing it changes nothing stored.
	got.RedirectURIs[0], got.Name = "changed", "changed"
	again, err := b.LookupClient(bg, want.ID)
	must(t, "LookupClient", err)
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("LookupClient after the caller changed its copy (-want +got):\n%s", diff)
	}
	fc, err := b.GetClient(bg, want.ID)
	must(t, "GetClient", err)
	sc, ok := fc.(*store.Client)
	if !ok {
		t.Fatalf("GetClient: got %T; want *store.Client", fc)
	}
	if diff := cmp.Diff(want, sc); diff != "" {
		t.Errorf("GetClient (-want +got):\n%s", diff)
	}
	list, err := b.ListClients(bg)
	must(t, "ListClients", err)
	if diff := cmp.Diff([]*store.Client{want}, list); diff != "" {
		t.Errorf("ListClients (-want +got):\n%s", diff)
	}
	_, err = b.GetClient(bg, "nobody")
	wantIs(t, "GetClient of an unknown id", err, fosite.ErrNotFound)
	_, err = b.LookupClient(bg, "nobody")
	wantIs(t, "LookupClient of an unknown id", err, store.ErrNotFound)
}

func testClientCreate(t *testing.T, b store.Backend, clk *Clock) {
	must(t, "CreateClient", b.CreateClient(bg, &store.Client{ID: "c1", Name: "first", Source: store.SourceDynamic}))
	wantIs(t, "CreateClient of a taken id", b.CreateClient(bg, &store.Client{ID: "c1", Name: "second"}), store.ErrAlreadyExists)
	got, err := b.LookupClient(bg, "c1")
	must(t, "LookupClient", err)
	if got.Name != "first" {
		t.Errorf("after a refused CreateClient: got name %q; want %q", got.Name, "first")
	}
	if !got.CreatedAt.Equal(clk.Now()) {
		t.Errorf("CreatedAt: got %v; want the clock's %v", got.CreatedAt, clk.Now())
	}
	if err := b.CreateClient(bg, &store.Client{ID: ""}); err == nil {
		t.Errorf("CreateClient with an empty id: got nil; want an error")
	}
}

func testClientUpdate(t *testing.T, b store.Backend, clk *Clock) {
	newClient(t, b, "c1")
	seen := clk.Now().Add(time.Hour)
	must(t, "UpdateClient", b.UpdateClient(bg, "c1", func(c *store.Client) error {
		c.Name = "renamed"
		c.LastUsedAt = seen
		c.ActivatedAt = seen
		return nil
	}))
	got, err := b.LookupClient(bg, "c1")
	must(t, "LookupClient", err)
	if got.Name != "renamed" || !got.LastUsedAt.Equal(seen) || !got.ActivatedAt.Equal(seen) {
		t.Errorf("after UpdateClient: got name %q, last used %v, activated %v; want renamed, %v, %v", got.Name, got.LastUsedAt, got.ActivatedAt, seen, seen)
	}
	boom := errors.New("boom")
	wantIs(t, "UpdateClient whose function fails", b.UpdateClient(bg, "c1", func(c *store.Client) error {
		c.Name = "lost"
		return boom
	}), boom)
	if err := b.UpdateClient(bg, "c1", func(c *store.Client) error { c.ID = "c2"; return nil }); err == nil {
		t.Errorf("UpdateClient changing the id: got nil; want an error")
	}
	got, err = b.LookupClient(bg, "c1")
	must(t, "LookupClient", err)
	if got.Name != "renamed" {
		t.Errorf("after failed updates: got name %q; want %q", got.Name, "renamed")
	}
	if _, err := b.LookupClient(bg, "c2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupClient(c2): got %v; want ErrNotFound", err)
	}
	wantIs(t, "UpdateClient of an unknown id", b.UpdateClient(bg, "nobody", func(*store.Client) error { return nil }), store.ErrNotFound)
}

func testClientUpdateConcurrent(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- b.UpdateClient(bg, "c1", func(c *store.Client) error {
				c.Contacts = append(c.Contacts, fmt.Sprintf("contact-%02d", i))
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "UpdateClient", err)
	}
	got, err := b.LookupClient(bg, "c1")
	must(t, "LookupClient", err)
	if len(got.Contacts) != n {
		t.Errorf("after %d concurrent appends: got %d contacts %v; want every one", n, len(got.Contacts), got.Contacts)
	}
}

func testClientDelete(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	newClient(t, b, "c2")
	at1, rt1 := issue(t, b, grant{"g1", "c1", "alice"}, 1)
	at2, rt2 := issue(t, b, grant{"g2", "c2", "alice"}, 1)
	must(t, "CreateAuthorizeCodeSession", b.CreateAuthorizeCodeSession(bg, "code-g3", newRequest(grant{"g3", "c1", "bob"})))
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "alice", ClientID: "c1"}))
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "alice", ClientID: "c2"}))
	must(t, "DeleteClient", b.DeleteClient(bg, "c1"))
	dead(t, b, "c1's grant", at1, rt1)
	alive(t, b, "c2's grant", at2, rt2)
	_, err := b.GetAuthorizeCodeSession(bg, "code-g3", proto())
	wantIs(t, "c1's code", err, fosite.ErrNotFound)
	_, err = b.LookupAccessToken(bg, at1)
	wantIs(t, "LookupAccessToken of c1's token", err, store.ErrNotFound)
	wantIs(t, "c1's consent", firstErr(b.GetConsent(bg, "alice", "c1")), store.ErrNotFound)
	if _, err := b.GetConsent(bg, "alice", "c2"); err != nil {
		t.Errorf("c2's consent: got %v; want it kept", err)
	}
	if live, err := b.LiveGrants(bg); err != nil || live["c1"] != 0 {
		t.Errorf("LiveGrants of c1: got %v, %v; want none", live, err)
	}
	wantIs(t, "a second DeleteClient", b.DeleteClient(bg, "c1"), store.ErrNotFound)
}

func testClientList(t *testing.T, b store.Backend, clk *Clock) {
	t0 := clk.Now()
	for _, c := range []struct {
		id string
		at time.Time
	}{{"b", t0}, {"a", t0}, {"z", t0.Add(-time.Nanosecond)}, {"c", t0.Add(time.Hour)}} {
		must(t, "CreateClient", b.CreateClient(bg, &store.Client{ID: c.id, CreatedAt: c.at, Source: store.SourceStatic}))
	}
	list, err := b.ListClients(bg)
	must(t, "ListClients", err)
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if diff := cmp.Diff([]string{"z", "a", "b", "c"}, ids); diff != "" {
		t.Errorf("ListClients order (-want +got):\n%s", diff)
	}
	if n, err := b.CountClients(bg); err != nil || n != 4 {
		t.Errorf("CountClients: got %d, %v; want 4", n, err)
	}
}

func testConsent(t *testing.T, b store.Backend, clk *Clock) {
	exp := clk.Now().Add(time.Hour)
	c := store.Consent{User: "alice", ClientID: "c1", Scopes: []string{"notes:read"}, RedirectHost: "127.0.0.1", ExpiresAt: exp}
	must(t, "PutConsent", b.PutConsent(bg, c))
	got, err := b.GetConsent(bg, "alice", "c1")
	must(t, "GetConsent", err)
	c.CreatedAt = clk.Now()
	if diff := cmp.Diff(&c, got); diff != "" {
		t.Errorf("GetConsent (-want +got):\n%s", diff)
	}
	c.Scopes = []string{"notes:read", "notes:write"}
	must(t, "PutConsent replacing", b.PutConsent(bg, c))
	got, err = b.GetConsent(bg, "alice", "c1")
	must(t, "GetConsent", err)
	if diff := cmp.Diff(c.Scopes, got.Scopes); diff != "" {
		t.Errorf("replaced consent's scopes (-want +got):\n%s", diff)
	}
	must(t, "PutConsent without expiry", b.PutConsent(bg, store.Consent{User: "bob", ClientID: "c1"}))
	clk.Advance(time.Hour)
	wantIs(t, "GetConsent once expired", firstErr(b.GetConsent(bg, "alice", "c1")), store.ErrNotFound)
	if _, err := b.GetConsent(bg, "bob", "c1"); err != nil {
		t.Errorf("a consent without expiry: got %v; want it kept", err)
	}
	wantIs(t, "GetConsent of none", firstErr(b.GetConsent(bg, "carol", "c1")), store.ErrNotFound)
	must(t, "DeleteConsent", b.DeleteConsent(bg, "bob", "c1"))
	wantIs(t, "GetConsent after DeleteConsent", firstErr(b.GetConsent(bg, "bob", "c1")), store.ErrNotFound)
	wantIs(t, "DeleteConsent of none", b.DeleteConsent(bg, "bob", "c1"), store.ErrNotFound)
	if err := b.PutConsent(bg, store.Consent{User: "", ClientID: "c1"}); err == nil {
		t.Errorf("PutConsent without a user: got nil; want an error")
	}
}

func testConsentList(t *testing.T, b store.Backend, clk *Clock) {
	for _, c := range []store.Consent{
		{User: "bob", ClientID: "c2"}, {User: "alice", ClientID: "c2"}, {User: "alice", ClientID: "c1"},
		{User: "Zed", ClientID: "c1"}, {User: "alice", ClientID: "c3", ExpiresAt: clk.Now().Add(time.Minute)},
	} {
		must(t, "PutConsent", b.PutConsent(bg, c))
	}
	clk.Advance(time.Minute)
	pairs := func(cs []store.Consent) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.User+"/"+c.ClientID)
		}
		return out
	}
	all, err := b.ListConsents(bg, "")
	must(t, "ListConsents", err)
	if diff := cmp.Diff([]string{"Zed/c1", "alice/c1", "alice/c2", "bob/c2"}, pairs(all)); diff != "" {
		t.Errorf("ListConsents of all (-want +got):\n%s", diff)
	}
	alice, err := b.ListConsents(bg, "alice")
	must(t, "ListConsents(alice)", err)
	if diff := cmp.Diff([]string{"alice/c1", "alice/c2"}, pairs(alice)); diff != "" {
		t.Errorf("ListConsents of alice (-want +got):\n%s", diff)
	}
	none, err := b.ListConsents(bg, "nobody")
	must(t, "ListConsents(nobody)", err)
	if len(none) != 0 {
		t.Errorf("ListConsents of nobody: got %v; want none", none)
	}
}

func testNotes(t *testing.T, b store.Backend, clk *Clock) {
	created := clk.Now()
	n, err := b.SaveNote(bg, "alice", store.Note{Title: "t1", Body: "b1", Tags: []string{"x"}})
	must(t, "SaveNote", err)
	if n.ID == "" || !n.CreatedAt.Equal(created) || !n.UpdatedAt.Equal(created) {
		t.Errorf("created note: got id %q, created %v, updated %v; want an id and the clock's time", n.ID, n.CreatedAt, n.UpdatedAt)
	}
	got, err := b.GetNote(bg, "alice", n.ID)
	must(t, "GetNote", err)
	if diff := cmp.Diff(n, got); diff != "" {
		t.Errorf("GetNote (-want +got):\n%s", diff)
	}
	clk.Advance(time.Minute)
	up, err := b.SaveNote(bg, "alice", store.Note{ID: n.ID, Title: "t2", Body: "b2", CreatedAt: clk.Now().Add(time.Hour)})
	must(t, "SaveNote update", err)
	want := store.Note{ID: n.ID, Title: "t2", Body: "b2", CreatedAt: created, UpdatedAt: clk.Now()}
	if diff := cmp.Diff(want, up); diff != "" {
		t.Errorf("updated note (-want +got):\n%s", diff)
	}
	got, err = b.GetNote(bg, "alice", n.ID)
	must(t, "GetNote", err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetNote after update (-want +got):\n%s", diff)
	}

	// Another owner sees nothing of it and cannot touch it.
	wantIs(t, "GetNote by another owner", firstErr(b.GetNote(bg, "bob", n.ID)), store.ErrNotFound)
	wantIs(t, "SaveNote by another owner", firstErr(b.SaveNote(bg, "bob", store.Note{ID: n.ID, Title: "stolen"})), store.ErrNotFound)
	wantIs(t, "DeleteNote by another owner", b.DeleteNote(bg, "bob", n.ID), store.ErrNotFound)
	if list, err := b.ListNotes(bg, "bob"); err != nil || len(list) != 0 {
		t.Errorf("ListNotes of bob: got %v, %v; want none", list, err)
	}
	got, err = b.GetNote(bg, "alice", n.ID)
	must(t, "GetNote", err)
	if got.Title != "t2" {
		t.Errorf("alice's note after bob's attempts: got title %q; want t2", got.Title)
	}
	wantIs(t, "SaveNote of an unknown id", firstErr(b.SaveNote(bg, "alice", store.Note{ID: "nope", Title: "x"})), store.ErrNotFound)
	if _, err := b.SaveNote(bg, "", store.Note{Title: "x"}); err == nil {
		t.Errorf("SaveNote without an owner: got nil; want an error")
	}

	must(t, "DeleteNote", b.DeleteNote(bg, "alice", n.ID))
	wantIs(t, "GetNote after delete", firstErr(b.GetNote(bg, "alice", n.ID)), store.ErrNotFound)
	wantIs(t, "a second DeleteNote", b.DeleteNote(bg, "alice", n.ID), store.ErrNotFound)
}

func testNoteSearch(t *testing.T, b store.Backend, clk *Clock) {
	save := func(title, body string, tags ...string) string {
		t.Helper()
		n, err := b.SaveNote(bg, "client:c1", store.Note{Title: title, Body: body, Tags: tags})
		must(t, "SaveNote", err)
		clk.Advance(time.Second)
		return n.ID
	}
	groceries := save("Groceries", "Milk and ÉCLAIRS", "home")
	meeting := save("Meeting notes", "discuss the milk budget", "work")
	trip := save("Trip", "pack bags", "Home", "travel")
	_, err := b.SaveNote(bg, "alice", store.Note{Title: "milk at alice's"})
	must(t, "SaveNote", err)

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{trip, meeting, groceries}},
		{"milk", []string{meeting, groceries}},
		{"MILK éclairs", []string{groceries}},
		{"home", []string{trip, groceries}},
		{"budget work", []string{meeting}},
		{"milk travel", nil},
		{"nothing-like-it", nil},
	} {
		got, err := b.SearchNotes(bg, "client:c1", c.query)
		must(t, "SearchNotes", err)
		var ids []string
		for _, n := range got {
			ids = append(ids, n.ID)
		}
		if diff := cmp.Diff(c.want, ids, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("SearchNotes(%q) ids (-want +got):\n%s", c.query, diff)
		}
	}
	list, err := b.ListNotes(bg, "client:c1")
	must(t, "ListNotes", err)
	if len(list) != 3 || list[0].ID != trip {
		t.Errorf("ListNotes: got %d notes, first %q; want 3, first %q", len(list), list[0].ID, trip)
	}
}

func testRevokeGrants(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	newClient(t, b, "c2")
	at1, rt1 := issue(t, b, grant{"g1", "c1", "alice"}, 1)
	at2, rt2 := issue(t, b, grant{"g2", "c1", "bob"}, 1)
	at3, rt3 := issue(t, b, grant{"g3", "c2", "alice"}, 1)
	at4, rt4 := issue(t, b, grant{"g4", "c2", "bob"}, 1)
	n, err := b.RevokeClientGrants(bg, "c1")
	must(t, "RevokeClientGrants", err)
	if n != 2 {
		t.Errorf("RevokeClientGrants(c1): got %d grants; want 2", n)
	}
	dead(t, b, "c1/alice", at1, rt1)
	dead(t, b, "c1/bob", at2, rt2)
	alive(t, b, "c2/alice", at3, rt3)
	if _, err := b.LookupClient(bg, "c1"); err != nil {
		t.Errorf("the client itself: got %v; want it kept", err)
	}
	n, err = b.RevokeSubjectGrants(bg, "bob")
	must(t, "RevokeSubjectGrants", err)
	if n != 1 {
		t.Errorf("RevokeSubjectGrants(bob): got %d grants; want 1", n)
	}
	dead(t, b, "c2/bob", at4, rt4)
	alive(t, b, "c2/alice", at3, rt3)
	for _, owner := range []string{"", "nobody"} {
		if n, err := b.RevokeClientGrants(bg, owner); err != nil || n != 0 {
			t.Errorf("RevokeClientGrants(%q): got %d, %v; want 0, nil", owner, n, err)
		}
		if n, err := b.RevokeSubjectGrants(bg, owner); err != nil || n != 0 {
			t.Errorf("RevokeSubjectGrants(%q): got %d, %v; want 0, nil", owner, n, err)
		}
	}
}

func testLiveGrants(t *testing.T, b store.Backend, clk *Clock) {
	for _, id := range []string{"c1", "c2", "c3"} {
		newClient(t, b, id)
	}
	// newRequest's session expires access tokens in an hour and refresh
	// tokens in 30 days, from the wall clock; this backend's clock is
	// moved instead.
	issue(t, b, grant{"g1", "c1", "alice"}, 1)
	issue(t, b, grant{"g2", "c1", "bob"}, 1)
	_, rt := issue(t, b, grant{"g3", "c2", "alice"}, 1)
	must(t, "RotateRefreshToken", b.RotateRefreshToken(bg, "g3", rt)) // no access token, inactive refresh token
	must(t, "CreateAuthorizeCodeSession", b.CreateAuthorizeCodeSession(bg, "code", newRequest(grant{"g4", "c3", "alice"})))
	live, err := b.LiveGrants(bg)
	must(t, "LiveGrants", err)
	if diff := cmp.Diff(map[string]int{"c1": 2}, live, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LiveGrants (-want +got):\n%s", diff)
	}
	clk.Advance(time.Since(clk.Now()) + 2*time.Hour) // access tokens expired, refresh tokens not
	live, err = b.LiveGrants(bg)
	must(t, "LiveGrants", err)
	if diff := cmp.Diff(map[string]int{"c1": 2}, live, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LiveGrants with expired access tokens (-want +got):\n%s", diff)
	}
	clk.Advance(31 * 24 * time.Hour)
	live, err = b.LiveGrants(bg)
	must(t, "LiveGrants", err)
	if len(live) != 0 {
		t.Errorf("LiveGrants once everything expired: got %v; want none", live)
	}
}

func testLookupAccessToken(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	req := newRequest(grant{"g1", "c1", "alice"})
	must(t, "CreateAccessTokenSession", b.CreateAccessTokenSession(bg, "at-1", req))
	got, err := b.LookupAccessToken(bg, "at-1")
	must(t, "LookupAccessToken", err)
	want := store.AccessTokenInfo{
		Subject: "alice", ClientID: "c1", GrantedScopes: []string{"notes:read"},
		GrantedAudience: []string{"http://127.0.0.1:8080/mcp"},
		ExpiresAt:       req.Session.GetExpiresAt(fosite.AccessToken), Active: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LookupAccessToken (-want +got):\n%s", diff)
	}
	// The caller owns what it got: changing it changes nothing stored.
	got.GrantedScopes[0] = "changed"
	again, err := b.LookupAccessToken(bg, "at-1")
	must(t, "LookupAccessToken", err)
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("LookupAccessToken after the caller changed its copy (-want +got):\n%s", diff)
	}
	_, err = b.LookupAccessToken(bg, "nope")
	wantIs(t, "LookupAccessToken of an unknown token", err, store.ErrNotFound)
	// Refresh tokens and codes are not access tokens.
	must(t, "CreateRefreshTokenSession", b.CreateRefreshTokenSession(bg, "rt-1", "at-1", req))
	_, err = b.LookupAccessToken(bg, "rt-1")
	wantIs(t, "LookupAccessToken of a refresh token", err, store.ErrNotFound)
}

func testLookupAfterRevocation(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	newClient(t, b, "c2")
	must(t, "CreateUser", b.CreateUser(bg, "dora", "pw"))
	revocations := []struct {
		name   string
		g      grant
		revoke func(g grant, access, refresh string) error
	}{
		{"RevokeAccessToken", grant{"g1", "c1", "alice"}, func(g grant, _, _ string) error { return b.RevokeAccessToken(bg, g.id) }},
		{"DeleteAccessTokenSession", grant{"g2", "c1", "alice"}, func(_ grant, at, _ string) error { return b.DeleteAccessTokenSession(bg, at) }},
		{"RotateRefreshToken", grant{"g3", "c1", "alice"}, func(g grant, _, rt string) error { return b.RotateRefreshToken(bg, g.id, rt) }},
		{"RevokeClientGrants", grant{"g4", "c1", "bob"}, func(g grant, _, _ string) error {
			_, err := b.RevokeClientGrants(bg, "c1")
			return err
		}},
		{"RevokeSubjectGrants", grant{"g5", "c2", "carol"}, func(g grant, _, _ string) error {
			_, err := b.RevokeSubjectGrants(bg, "carol")
			return err
		}},
		{"DeleteUser", grant{"g6", "c2", "dora"}, func(g grant, _, _ string) error { return b.DeleteUser(bg, "dora") }},
		{"DeleteClient", grant{"g7", "c2", "erin"}, func(g grant, _, _ string) error { return b.DeleteClient(bg, "c2") }},
		{"RevokeAccessToken in a transaction", grant{"g8", "c1", "frank"}, func(g grant, _, _ string) error {
			ctx, err := b.BeginTX(bg)
			if err != nil {
				return err
			}
			if err := b.RevokeAccessToken(ctx, g.id); err != nil {
				b.Rollback(ctx)
				return err
			}
			return b.Commit(ctx)
		}},
	}
	for _, r := range revocations {
		at, rt := issue(t, b, r.g, 1)
		for range 2 { // the second lookup may be answered from a cache
			if _, err := b.LookupAccessToken(bg, at); err != nil {
				t.Fatalf("%s: LookupAccessToken before: %v", r.name, err)
			}
		}
		must(t, r.name, r.revoke(r.g, at, rt))
		_, err := b.LookupAccessToken(bg, at)
		wantIs(t, "LookupAccessToken right after "+r.name, err, store.ErrNotFound)
	}
}

func testSuccessor(t *testing.T, b store.Backend, clk *Clock) {
	must(t, "PutRefreshSuccessor", b.PutRefreshSuccessor(bg, "rt-old", []byte("sealed-1"), clk.Now().Add(time.Minute)))
	got, err := b.GetRefreshSuccessor(bg, "rt-old")
	must(t, "GetRefreshSuccessor", err)
	if string(got) != "sealed-1" {
		t.Errorf("GetRefreshSuccessor: got %q; want sealed-1", got)
	}
	must(t, "PutRefreshSuccessor replacing", b.PutRefreshSuccessor(bg, "rt-old", []byte("sealed-2"), clk.Now().Add(time.Minute)))
	got, err = b.GetRefreshSuccessor(bg, "rt-old")
	must(t, "GetRefreshSuccessor", err)
	if string(got) != "sealed-2" {
		t.Errorf("GetRefreshSuccessor after replacing: got %q; want sealed-2", got)
	}
	wantIs(t, "GetRefreshSuccessor of none", firstErr(b.GetRefreshSuccessor(bg, "rt-other")), store.ErrNotFound)
	clk.Advance(time.Minute)
	wantIs(t, "GetRefreshSuccessor once expired", firstErr(b.GetRefreshSuccessor(bg, "rt-old")), store.ErrNotFound)
	if err := b.PutRefreshSuccessor(bg, "rt-x", []byte("x"), time.Time{}); err == nil {
		t.Errorf("PutRefreshSuccessor without expiry: got nil; want an error")
	}
}

// race runs n copies of fn at once, released together, and returns their
// errors.
func race(n int, fn func(i int) error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// exactlyOneWins checks that one of errs is nil and every other is want.
func exactlyOneWins(t *testing.T, what string, errs []error, want error) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, want):
			t.Errorf("%s: a loser got %v; want %v", what, err, want)
		}
	}
	if wins != 1 {
		t.Errorf("%s: %d of %d won; want exactly 1", what, wins, len(errs))
	}
}

func testCodeSingleUse(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	must(t, "CreateAuthorizeCodeSession", b.CreateAuthorizeCodeSession(bg, "code-1", newRequest(grant{"g1", "c1", "alice"})))
	must(t, "InvalidateAuthorizeCodeSession", b.InvalidateAuthorizeCodeSession(bg, "code-1"))
	wantIs(t, "a second InvalidateAuthorizeCodeSession", b.InvalidateAuthorizeCodeSession(bg, "code-1"), fosite.ErrInvalidatedAuthorizeCode)

	must(t, "CreateAuthorizeCodeSession", b.CreateAuthorizeCodeSession(bg, "code-2", newRequest(grant{"g2", "c1", "alice"})))
	// Each racer does what the token endpoint does: in a transaction, read
	// the code, invalidate it, issue a token.
	errs := race(8, func(i int) error {
		ctx, err := b.BeginTX(bg)
		if err != nil {
			return err
		}
		defer b.Rollback(ctx)
		if _, err := b.GetAuthorizeCodeSession(ctx, "code-2", proto()); err != nil && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			return err
		}
		if err := b.InvalidateAuthorizeCodeSession(ctx, "code-2"); err != nil {
			return err
		}
		if err := b.CreateAccessTokenSession(ctx, fmt.Sprintf("at-race-%d", i), newRequest(grant{"g2", "c1", "alice"})); err != nil {
			return err
		}
		return b.Commit(ctx)
	})
	exactlyOneWins(t, "concurrent exchanges of one code", errs, fosite.ErrInvalidatedAuthorizeCode)
	issued := 0
	for i := range 8 {
		if accessAlive(b, fmt.Sprintf("at-race-%d", i)) {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("tokens issued for one code: got %d; want 1", issued)
	}
}

func testRotationRace(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	g := grant{"g1", "c1", "alice"}
	_, rt := issue(t, b, g, 1)
	errs := race(8, func(i int) error {
		ctx, err := b.BeginTX(bg)
		if err != nil {
			return err
		}
		defer b.Rollback(ctx)
		if err := b.RotateRefreshToken(ctx, g.id, rt); err != nil {
			return err
		}
		if err := b.CreateRefreshTokenSession(ctx, fmt.Sprintf("rt-next-%d", i), "", newRequest(g)); err != nil {
			return err
		}
		return b.Commit(ctx)
	})
	exactlyOneWins(t, "concurrent rotations of one refresh token", errs, fosite.ErrSerializationFailure)
	live := 0
	for i := range 8 {
		if _, err := b.GetRefreshTokenSession(bg, fmt.Sprintf("rt-next-%d", i), proto()); err == nil {
			live++
		}
	}
	if live != 1 {
		t.Errorf("live successors of one refresh token: got %d; want 1 (the grant forked)", live)
	}
	wantIs(t, "RotateRefreshToken of an unknown token", b.RotateRefreshToken(bg, g.id, "nope"), fosite.ErrNotFound)
	_, rt2 := issue(t, b, g, 2)
	wantIs(t, "RotateRefreshToken under another grant's id", b.RotateRefreshToken(bg, "other-grant", rt2), fosite.ErrNotFound)
}

func testJTIRace(t *testing.T, b store.Backend, clk *Clock) {
	exp := clk.Now().Add(time.Hour)
	errs := race(8, func(int) error { return b.SetClientAssertionJWT(bg, "jti-race", exp) })
	exactlyOneWins(t, "concurrent first uses of one jti", errs, fosite.ErrJTIKnown)
	wantIs(t, "ClientAssertionJWTValid of a used jti", b.ClientAssertionJWTValid(bg, "jti-race"), fosite.ErrJTIKnown)
	clk.Advance(time.Hour)
	if err := b.ClientAssertionJWTValid(bg, "jti-race"); err != nil {
		t.Errorf("ClientAssertionJWTValid once expired: got %v; want nil", err)
	}
	if err := b.SetClientAssertionJWT(bg, "jti-race", clk.Now().Add(time.Hour)); err != nil {
		t.Errorf("SetClientAssertionJWT of an expired jti: got %v; want nil", err)
	}
}

func testSecret(t *testing.T, b store.Backend, _ *Clock) {
	results := make([][]byte, 8)
	errs := race(8, func(i int) error {
		var err error
		results[i], err = b.Secret(bg, "racing", 32)
		return err
	})
	for _, err := range errs {
		must(t, "Secret", err)
	}
	for i, r := range results {
		if len(r) != 32 || !slices.Equal(r, results[0]) {
			t.Errorf("racing Secret caller %d: got %x; want the same 32 bytes as caller 0 (%x)", i, r, results[0])
		}
	}
	again, err := b.Secret(bg, "racing", 64)
	must(t, "Secret", err)
	if !slices.Equal(again, results[0]) {
		t.Errorf("Secret asked again with another size: got %x; want %x", again, results[0])
	}
	other, err := b.Secret(bg, "other", 32)
	must(t, "Secret", err)
	if slices.Equal(other, results[0]) {
		t.Errorf("two secrets are the same bytes")
	}
	if _, err := b.Secret(bg, "", 32); err == nil {
		t.Errorf("Secret without a name: got nil; want an error")
	}
}

func testLockKey(t *testing.T, b store.Backend, _ *Clock) {
	var holders, overlaps atomic.Int32
	errs := race(8, func(int) error {
		unlock, err := b.LockKey(bg, "refresh:abc")
		if err != nil {
			return err
		}
		if holders.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(time.Millisecond)
		holders.Add(-1)
		unlock()
		unlock() // a second call does nothing
		return nil
	})
	for _, err := range errs {
		must(t, "LockKey", err)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("holders of one key overlapped %d times; want never", n)
	}

	unlock, err := b.LockKey(bg, "code:held")
	must(t, "LockKey", err)
	other, err := b.LockKey(bg, "code:other")
	must(t, "LockKey of another key while the first is held", err)
	other()
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if _, err := b.LockKey(ctx, "code:held"); err == nil {
		t.Errorf("LockKey of a held key with a context that ends: got the lock; want an error")
	}
	unlock()
	again, err := b.LockKey(bg, "code:held")
	must(t, "LockKey after unlock", err)
	again()
}

func testSweep(t *testing.T, b store.Backend, clk *Clock) {
	// Requests of newRequest expire by the wall clock: codes in 10
	// minutes, access tokens in an hour, refresh tokens in 30 days.
	clk.Advance(time.Since(clk.Now()))
	newClient(t, b, "kept")
	must(t, "UpdateClient", b.UpdateClient(bg, "kept", func(c *store.Client) error { c.ActivatedAt = clk.Now(); return nil }))
	must(t, "CreateClient", b.CreateClient(bg, &store.Client{ID: "static", Source: store.SourceStatic}))
	newClient(t, b, "stale")
	at, rt := issue(t, b, grant{"g1", "kept", "alice"}, 1)
	atStale, rtStale := issue(t, b, grant{"g2", "stale", "alice"}, 1)
	must(t, "CreateAuthorizeCodeSession", b.CreateAuthorizeCodeSession(bg, "code", newRequest(grant{"g3", "kept", "alice"})))
	must(t, "CreatePKCERequestSession", b.CreatePKCERequestSession(bg, "code", newRequest(grant{"g3", "kept", "alice"})))
	must(t, "SetClientAssertionJWT", b.SetClientAssertionJWT(bg, "jti-old", clk.Now().Add(time.Minute)))
	must(t, "SetClientAssertionJWT", b.SetClientAssertionJWT(bg, "jti-new", clk.Now().Add(48*time.Hour)))
	must(t, "PutRefreshSuccessor", b.PutRefreshSuccessor(bg, "succ-old", []byte("x"), clk.Now().Add(time.Minute)))
	must(t, "PutRefreshSuccessor", b.PutRefreshSuccessor(bg, "succ-new", []byte("x"), clk.Now().Add(48*time.Hour)))
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "alice", ClientID: "kept", ExpiresAt: clk.Now().Add(time.Minute)}))
	must(t, "PutConsent", b.PutConsent(bg, store.Consent{User: "bob", ClientID: "kept"}))

	st, err := b.Sweep(bg)
	must(t, "Sweep with nothing expired", err)
	if st.Codes+st.Access+st.Refresh+st.PKCE+st.JTIs+st.Successors+st.Consents+st.Clients != 0 {
		t.Errorf("Sweep with nothing expired: got %+v; want nothing removed", st)
	}

	clk.Advance(25 * time.Hour) // past codes, access tokens, JTI, successor, consent and the stale client's 24h
	st, err = b.Sweep(bg)
	must(t, "Sweep", err)
	st.Index = 0
	// Expired tokens go first, the stale client's among them; then the
	// client, with the rest of its grant.
	want := store.SweepStats{Codes: 1, PKCE: 1, Access: 2, JTIs: 1, Successors: 1, Consents: 1, Clients: 1}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Sweep (-want +got):\n%s", diff)
	}
	if _, err := b.GetAccessTokenSession(bg, at, proto()); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("expired access token after the sweep: got %v; want fosite.ErrNotFound", err)
	}
	if _, err := b.GetRefreshTokenSession(bg, rt, proto()); err != nil {
		t.Errorf("unexpired refresh token after the sweep: got %v; want it kept", err)
	}
	dead(t, b, "the stale client's grant", atStale, rtStale)
	for _, id := range []string{"kept", "static"} {
		if _, err := b.LookupClient(bg, id); err != nil {
			t.Errorf("client %s after the sweep: got %v; want it kept", id, err)
		}
	}
	wantIs(t, "the stale client", firstErr(b.LookupClient(bg, "stale")), store.ErrNotFound)
	wantIs(t, "the expired JTI", b.ClientAssertionJWTValid(bg, "jti-old"), nil)
	wantIs(t, "the unexpired JTI", b.ClientAssertionJWTValid(bg, "jti-new"), fosite.ErrJTIKnown)
	if _, err := b.GetRefreshSuccessor(bg, "succ-new"); err != nil {
		t.Errorf("unexpired successor after the sweep: got %v; want it kept", err)
	}
	if _, err := b.GetConsent(bg, "bob", "kept"); err != nil {
		t.Errorf("consent without expiry after the sweep: got %v; want it kept", err)
	}
	if cs, err := b.ListConsents(bg, ""); err != nil || len(cs) != 1 {
		t.Errorf("consents after the sweep: got %v, %v; want bob's only", cs, err)
	}
}

func testTxSentinel(t *testing.T, b store.Backend, _ *Clock) {
	must(t, "CreateUser", b.CreateUser(bg, "alice", "pw"))
	newClient(t, b, "c1")
	ctx, err := b.BeginTX(bg)
	must(t, "BeginTX", err)
	defer b.Rollback(ctx)
	wantIs(t, "CreateClient of a taken id in a transaction", b.CreateClient(ctx, &store.Client{ID: "c1"}), store.ErrAlreadyExists)
	wantIs(t, "DeleteUser of an unknown user in a transaction", b.DeleteUser(ctx, "nobody"), store.ErrNotFound)
	wantIs(t, "LookupClient of an unknown id in a transaction", firstErr(b.LookupClient(ctx, "nobody")), store.ErrNotFound)
	wantIs(t, "UpdateClient of an unknown id in a transaction", b.UpdateClient(ctx, "nobody", func(*store.Client) error { return nil }), store.ErrNotFound)
	wantIs(t, "GetNote of an unknown note in a transaction", firstErr(b.GetNote(ctx, "alice", "nope")), store.ErrNotFound)
	wantIs(t, "DeleteConsent of none in a transaction", b.DeleteConsent(ctx, "alice", "c1"), store.ErrNotFound)
	wantIs(t, "InvalidateAuthorizeCodeSession of an unknown code in a transaction", b.InvalidateAuthorizeCodeSession(ctx, "nope"), fosite.ErrNotFound)
	wantIs(t, "RotateRefreshToken of an unknown token in a transaction", b.RotateRefreshToken(ctx, "g", "nope"), fosite.ErrNotFound)
	must(t, "PutConsent after the errors", b.PutConsent(ctx, store.Consent{User: "alice", ClientID: "c1"}))
	must(t, "Commit", b.Commit(ctx))
	if _, err := b.GetConsent(bg, "alice", "c1"); err != nil {
		t.Errorf("consent written after sentinel errors in a committed transaction: got %v; want it kept", err)
	}
}

func testTxIsolation(t *testing.T, b store.Backend, _ *Clock) {
	ctx, err := b.BeginTX(bg)
	must(t, "BeginTX", err)
	must(t, "CreateClient", b.CreateClient(ctx, &store.Client{ID: "c1", Source: store.SourceStatic}))
	if _, err := b.LookupClient(ctx, "c1"); err != nil {
		t.Errorf("LookupClient inside the transaction: got %v; want its own write", err)
	}
	wantIs(t, "LookupClient outside before commit", firstErr(b.LookupClient(bg, "c1")), store.ErrNotFound)
	must(t, "Commit", b.Commit(ctx))
	if _, err := b.LookupClient(bg, "c1"); err != nil {
		t.Errorf("LookupClient after commit: got %v; want it", err)
	}
	if err := b.Commit(ctx); err == nil {
		t.Errorf("a second Commit: got nil; want an error")
	}
	if err := b.Rollback(ctx); err != nil {
		t.Errorf("Rollback after Commit: got %v; want nil", err)
	}

	outer, err := b.BeginTX(bg)
	must(t, "BeginTX", err)
	must(t, "CreateClient", b.CreateClient(outer, &store.Client{ID: "c2", Source: store.SourceStatic}))
	inner, err := b.BeginTX(outer)
	must(t, "nested BeginTX", err)
	must(t, "nested CreateClient", b.CreateClient(inner, &store.Client{ID: "c3", Source: store.SourceStatic}))
	must(t, "nested Rollback", b.Rollback(inner))
	if err := b.Commit(outer); err == nil {
		t.Errorf("Commit after a nested Rollback: got nil; want an error")
	}
	b.Rollback(outer)
	for _, id := range []string{"c2", "c3"} {
		wantIs(t, "LookupClient("+id+") of a doomed transaction", firstErr(b.LookupClient(bg, id)), store.ErrNotFound)
	}

	outer, err = b.BeginTX(bg)
	must(t, "BeginTX", err)
	inner, err = b.BeginTX(outer)
	must(t, "nested BeginTX", err)
	must(t, "nested CreateClient", b.CreateClient(inner, &store.Client{ID: "c4", Source: store.SourceStatic}))
	must(t, "nested Commit", b.Commit(inner))
	wantIs(t, "LookupClient outside after a nested commit", firstErr(b.LookupClient(bg, "c4")), store.ErrNotFound)
	must(t, "outer Commit", b.Commit(outer))
	if _, err := b.LookupClient(bg, "c4"); err != nil {
		t.Errorf("LookupClient after the outer commit: got %v; want it", err)
	}
}

func testBadText(t *testing.T, b store.Backend, _ *Clock) {
	newClient(t, b, "c1")
	for _, id := range []string{"c1\x00", "\xffc1", "c\x001"} {
		wantIs(t, fmt.Sprintf("LookupClient(%q)", id), firstErr(b.LookupClient(bg, id)), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("GetClient(%q)", id), firstErr(b.GetClient(bg, id)), fosite.ErrNotFound)
		wantIs(t, fmt.Sprintf("DeleteClient(%q)", id), b.DeleteClient(bg, id), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("UpdateClient(%q)", id), b.UpdateClient(bg, id, func(*store.Client) error { return nil }), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("GetConsent(%q)", id), firstErr(b.GetConsent(bg, id, "c1")), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("GetNote(alice, %q)", id), firstErr(b.GetNote(bg, "alice", id)), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("DeleteNote(alice, %q)", id), b.DeleteNote(bg, "alice", id), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("SaveNote(alice, id %q)", id), firstErr(b.SaveNote(bg, "alice", store.Note{ID: id})), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("Authenticate(%q)", id), b.Authenticate(bg, id, "pw"), store.ErrBadCredentials)
		wantIs(t, fmt.Sprintf("SetPassword(%q)", id), b.SetPassword(bg, id, "pw"), store.ErrNotFound)
		wantIs(t, fmt.Sprintf("DeleteUser(%q)", id), b.DeleteUser(bg, id), store.ErrNotFound)
		if ok, err := b.UserExists(bg, id); err != nil || ok {
			t.Errorf("UserExists(%q): got %v, %v; want false, nil", id, ok, err)
		}
		if n, err := b.RevokeClientGrants(bg, id); err != nil || n != 0 {
			t.Errorf("RevokeClientGrants(%q): got %d, %v; want 0, nil", id, n, err)
		}
	}
}
