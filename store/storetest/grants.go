package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// SubjectGrantStorage is what the account page needs of the grants of one
// user: list them, and end those of one client.
type SubjectGrantStorage interface {
	Storage
	ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error)
	RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error)
}

// RunSubjectGrants runs the rules of a user's own grants against stores
// made by newFixture; their Storage must implement SubjectGrantStorage.
// fosite's memory store has no such methods.
func RunSubjectGrants(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, f Fixture, s SubjectGrantStorage)
	}{
		{"subject grants: one request per live grant of the subject, with its client, scopes and session", testListSubjectGrants},
		{"subject grants: a rotated grant is listed once, as its newest token has it", testListRotatedGrant},
		{"subject grants: a revoked grant is not listed", testListRevokedGrant},
		{"subject grants: revoking one client's grants of a subject ends exactly those", testRevokeSubjectClient},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			f := newFixture(t)
			s, ok := f.Storage.(SubjectGrantStorage)
			if !ok {
				t.Fatalf("store %T does not implement SubjectGrantStorage", f.Storage)
			}
			r.fn(t, f, s)
		})
	}
}

func jwtProto() fosite.Session { return &oauth2.JWTSession{} }

// grantSummary is what the rules compare of a listed request.
type grantSummary struct {
	ID, Client, Subject string
	Scopes              []string
}

func summarize(reqs []fosite.Requester) []grantSummary {
	var out []grantSummary
	for _, r := range reqs {
		g := grantSummary{ID: r.GetID(), Client: r.GetClient().GetID(), Scopes: r.GetGrantedScopes()}
		if sess := r.GetSession(); sess != nil {
			g.Subject = sess.GetSubject()
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b grantSummary) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

func listGrants(t *testing.T, s SubjectGrantStorage, subject string) []fosite.Requester {
	t.Helper()
	reqs, err := s.ListSubjectGrants(context.Background(), subject, jwtProto)
	mustNil(t, "ListSubjectGrants", err)
	return reqs
}

func testListSubjectGrants(t *testing.T, f Fixture, s SubjectGrantStorage) {
	f.AddClient(t, "client-1")
	f.AddClient(t, "client-2")
	issue(t, s, grant{"req-1", "client-1", "alice"}, 1)
	issue(t, s, grant{"req-2", "client-2", "alice"}, 1)
	issue(t, s, grant{"req-3", "client-1", "bob"}, 1)
	want := []grantSummary{
		{ID: "req-1", Client: "client-1", Subject: "alice", Scopes: []string{"notes:read"}},
		{ID: "req-2", Client: "client-2", Subject: "alice", Scopes: []string{"notes:read"}},
	}
	if diff := cmp.Diff(want, summarize(listGrants(t, s, "alice"))); diff != "" {
		t.Errorf("alice's grants (-want +got):\n%s", diff)
	}
	if got := listGrants(t, s, "carol"); len(got) != 0 {
		t.Errorf("carol has %d grants; want none", len(got))
	}
}

func testListRotatedGrant(t *testing.T, f Fixture, s SubjectGrantStorage) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	_, rt1 := issue(t, s, g, 1)
	mustNil(t, "RotateRefreshToken", s.RotateRefreshToken(ctx, g.id, rt1))
	issue(t, s, g, 2)
	got := listGrants(t, s, "alice")
	if diff := cmp.Diff([]grantSummary{{ID: "req-1", Client: "client-1", Subject: "alice", Scopes: []string{"notes:read"}}}, summarize(got)); diff != "" {
		t.Errorf("grants after rotation (-want +got):\n%s", diff)
	}
}

func testListRevokedGrant(t *testing.T, f Fixture, s SubjectGrantStorage) {
	ctx := context.Background()
	f.AddClient(t, "client-1")
	issue(t, s, grant{"req-1", "client-1", "alice"}, 1)
	issue(t, s, grant{"req-2", "client-1", "alice"}, 1)
	mustNil(t, "RevokeRefreshToken", s.RevokeRefreshToken(ctx, "req-1"))
	mustNil(t, "RevokeAccessToken", s.RevokeAccessToken(ctx, "req-1"))
	if diff := cmp.Diff([]grantSummary{{ID: "req-2", Client: "client-1", Subject: "alice", Scopes: []string{"notes:read"}}}, summarize(listGrants(t, s, "alice"))); diff != "" {
		t.Errorf("grants after revoking req-1 (-want +got):\n%s", diff)
	}
}

func testRevokeSubjectClient(t *testing.T, f Fixture, s SubjectGrantStorage) {
	ctx := context.Background()
	f.AddClient(t, "client-1")
	f.AddClient(t, "client-2")
	at1, rt1 := issue(t, s, grant{"req-1", "client-1", "alice"}, 1)
	at2, rt2 := issue(t, s, grant{"req-2", "client-1", "alice"}, 1)
	at3, rt3 := issue(t, s, grant{"req-3", "client-2", "alice"}, 1)
	at4, rt4 := issue(t, s, grant{"req-4", "client-1", "bob"}, 1)
	n, err := s.RevokeSubjectClientGrants(ctx, "alice", "client-1")
	mustNil(t, "RevokeSubjectClientGrants", err)
	if n != 2 {
		t.Errorf("RevokeSubjectClientGrants ended %d grants; want 2", n)
	}
	dead(t, s, "alice's first grant of client-1", at1, rt1)
	dead(t, s, "alice's second grant of client-1", at2, rt2)
	alive(t, s, "alice's grant of client-2", at3, rt3)
	alive(t, s, "bob's grant of client-1", at4, rt4)
	if diff := cmp.Diff([]grantSummary{{ID: "req-3", Client: "client-2", Subject: "alice", Scopes: []string{"notes:read"}}}, summarize(listGrants(t, s, "alice"))); diff != "" {
		t.Errorf("alice's grants after the revocation (-want +got):\n%s", diff)
	}
	n, err = s.RevokeSubjectClientGrants(ctx, "alice", "client-1")
	mustNil(t, "second RevokeSubjectClientGrants", err)
	if n != 0 {
		t.Errorf("second RevokeSubjectClientGrants ended %d grants; want 0", n)
	}
}
