package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
	"github.com/mcpd/mcpd/store/storetest"
)

// newRequest is a fosite request of grant id as the token endpoint stores
// it, expiring by the wall clock: codes in 10 minutes, access tokens in an
// hour, refresh tokens in 30 days.
func newRequest(id, client, subject string) *fosite.Request {
	now := time.Now().UTC().Round(time.Second)
	r := fosite.NewRequest()
	r.ID = id
	r.RequestedAt = now
	r.Client = &fosite.DefaultClient{ID: client}
	r.RequestedScope = fosite.Arguments{"notes:read", "notes:write"}
	r.GrantedScope = fosite.Arguments{"notes:read"}
	r.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
	r.Form = url.Values{"redirect_uri": {"http://127.0.0.1:33418/"}}
	r.Session = &fosite.DefaultSession{
		Subject: subject,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AuthorizeCode: now.Add(10 * time.Minute),
			fosite.AccessToken:   now.Add(time.Hour),
			fosite.RefreshToken:  now.Add(30 * 24 * time.Hour),
		},
	}
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fillBolt writes one of every record into a bbolt store, some of them
// expired, and returns the store.
func fillBolt(t *testing.T) *store.Store {
	t.Helper()
	b, err := store.Open(t.TempDir(), nil)
	must(t, err)
	t.Cleanup(func() { b.Close() })
	must(t, b.CreateUser(bg, "alice", "alice-pw"))
	must(t, b.CreateUser(bg, "bob", "bob-pw"))
	_, err = b.Secret(bg, "token-hmac", 32)
	must(t, err)
	must(t, b.CreateClient(bg, &store.Client{ID: "c1", Name: "one", RedirectURIs: []string{"http://127.0.0.1/"}, Source: store.SourceDynamic, TokenEndpointAuthMethod: "none", ActivatedAt: time.Now()}))
	must(t, b.CreateClient(bg, &store.Client{ID: "c2", Name: "two", Source: store.SourceStatic, SecretHash: []byte("hash")}))
	must(t, b.PutConsent(bg, store.Consent{User: "alice", ClientID: "c1", Scopes: []string{"notes:read"}, ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, b.PutConsent(bg, store.Consent{User: "bob", ClientID: "c1", ExpiresAt: time.Now().Add(-time.Hour)})) // expired
	_, err = b.SaveNote(bg, "alice", store.Note{Title: "alice's note", Body: "body", Tags: []string{"t"}})
	must(t, err)
	_, err = b.SaveNote(bg, "client:c2", store.Note{Title: "the client's note"})
	must(t, err)
	// A live grant, rotated once: its first refresh token is inactive.
	must(t, b.CreateAccessTokenSession(bg, "at-1", newRequest("g1", "c1", "alice")))
	must(t, b.CreateRefreshTokenSession(bg, "rt-1", "", newRequest("g1", "c1", "alice")))
	must(t, b.RotateRefreshToken(bg, "g1", "rt-1"))
	must(t, b.CreateAccessTokenSession(bg, "at-2", newRequest("g1", "c1", "alice")))
	must(t, b.CreateRefreshTokenSession(bg, "rt-2", "", newRequest("g1", "c1", "alice")))
	// A code not yet exchanged, with its PKCE session.
	must(t, b.CreateAuthorizeCodeSession(bg, "code-1", newRequest("g2", "c1", "bob")))
	must(t, b.CreatePKCERequestSession(bg, "code-1", newRequest("g2", "c1", "bob")))
	// An expired access token of another grant.
	expired := newRequest("g3", "c2", "client:c2")
	expired.Session.SetExpiresAt(fosite.AccessToken, time.Now().Add(-time.Minute))
	must(t, b.CreateAccessTokenSession(bg, "at-expired", expired))
	must(t, b.SetClientAssertionJWT(bg, "jti-1", time.Now().Add(time.Hour)))
	must(t, b.SetClientAssertionJWT(bg, "jti-old", time.Now().Add(-time.Hour)))
	must(t, b.PutRefreshSuccessor(bg, "rt-1", []byte("sealed"), time.Now().Add(time.Minute)))
	must(t, b.CreateExternalUser(bg, "carol", "Carol@Example.com"))
	must(t, b.LinkIdentity(bg, store.Identity{Issuer: "https://idp.example", Subject: "c-1", Provider: "example", User: "carol", Email: "carol@example.com"}))
	must(t, b.PutUpstreamToken(bg, "carol", "example", []byte("sealed upstream")))
	must(t, b.CreatePasskey(bg, store.Passkey{ID: []byte{1, 2, 3}, User: "alice", Name: "laptop", PublicKey: []byte("cose"), SignCount: 7, Transports: []string{"internal"}, UserVerified: true}))
	return b
}

func TestImportFromBolt(t *testing.T) {
	b := fillBolt(t)
	pgURL := pgtest.URL(t)
	p := open(t, pgURL, nil)

	var counts store.ExportCounts
	must(t, p.Import(bg, func(ctx context.Context, sink store.Sink) error {
		var err error
		counts, err = b.Export(ctx, sink)
		return err
	}))
	// Tokens: rt-1 (rotated), at-2, rt-2, code-1 and its PKCE session; at-1
	// went with the rotation, at-expired is not copied.
	wantCounts := store.ExportCounts{Secrets: 1, Clients: 2, Consents: 1, Notes: 2, Tokens: 5, JTIs: 1, Successors: 1, Passkeys: 1, Identities: 1, UpstreamTokens: 1, Users: 3}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("exported (-want +got):\n%s", diff)
	}

	t.Run("users, clients, consents, notes and passkeys are the same on both", func(t *testing.T) {
		for _, c := range []struct {
			what string
			get  func(store.Backend) (any, error)
		}{
			{"ListUsers", func(s store.Backend) (any, error) { return s.ListUsers(bg) }},
			{"ListClients", func(s store.Backend) (any, error) { return s.ListClients(bg) }},
			{"ListConsents", func(s store.Backend) (any, error) { return s.ListConsents(bg, "") }},
			{"ListNotes(alice)", func(s store.Backend) (any, error) { return s.ListNotes(bg, "alice") }},
			{"ListNotes(client:c2)", func(s store.Backend) (any, error) { return s.ListNotes(bg, "client:c2") }},
			{"LiveGrants", func(s store.Backend) (any, error) { return s.LiveGrants(bg) }},
			{"LookupAccessToken(at-2)", func(s store.Backend) (any, error) { return s.LookupAccessToken(bg, "at-2") }},
			{"Secret(token-hmac)", func(s store.Backend) (any, error) { return s.Secret(bg, "token-hmac", 32) }},
			{"ListPasskeys(alice)", func(s store.Backend) (any, error) { return s.ListPasskeys(bg, "alice") }},
			{"ListIdentities(carol)", func(s store.Backend) (any, error) { return s.ListIdentities(bg, "carol") }},
			{"LookupUserByEmail", func(s store.Backend) (any, error) { return s.LookupUserByEmail(bg, "CAROL@example.com") }},
			{"GetUpstreamToken", func(s store.Backend) (any, error) { return s.GetUpstreamToken(bg, "carol", "example") }},
		} {
			want, err := c.get(b)
			must(t, err)
			got, err := c.get(p)
			must(t, err)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s (-bolt +postgres):\n%s", c.what, diff)
			}
		}
	})

	t.Run("passwords, grants, codes, JTIs and successors work as they did", func(t *testing.T) {
		must(t, p.Authenticate(bg, "alice", "alice-pw"))
		if err := p.Authenticate(bg, "alice", "bob-pw"); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("a wrong password: got %v; want ErrBadCredentials", err)
		}
		if _, err := p.GetAccessTokenSession(bg, "at-2", &fosite.DefaultSession{}); err != nil {
			t.Errorf("the live access token: %v", err)
		}
		if _, err := p.GetRefreshTokenSession(bg, "rt-2", &fosite.DefaultSession{}); err != nil {
			t.Errorf("the live refresh token: %v", err)
		}
		if _, err := p.GetRefreshTokenSession(bg, "rt-1", &fosite.DefaultSession{}); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("the rotated refresh token: got %v; want fosite.ErrInactiveToken (reuse stays detectable)", err)
		}
		req, err := p.GetAuthorizeCodeSession(bg, "code-1", &fosite.DefaultSession{})
		if err != nil || req.GetSession().GetSubject() != "bob" {
			t.Errorf("the unexchanged code: got %v, %v; want bob's request", req, err)
		}
		if _, err := p.GetPKCERequestSession(bg, "code-1", &fosite.DefaultSession{}); err != nil {
			t.Errorf("the PKCE session: %v", err)
		}
		if err := p.ClientAssertionJWTValid(bg, "jti-1"); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("the unexpired JTI: got %v; want fosite.ErrJTIKnown", err)
		}
		if got, err := p.GetRefreshSuccessor(bg, "rt-1"); err != nil || string(got) != "sealed" {
			t.Errorf("the successor: got %q, %v; want sealed", got, err)
		}
	})

	t.Run("nothing expired is copied", func(t *testing.T) {
		if _, err := p.GetAccessTokenSession(bg, "at-expired", &fosite.DefaultSession{}); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("the expired access token: got %v; want fosite.ErrNotFound", err)
		}
		if _, err := p.GetConsent(bg, "bob", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the expired consent: got %v; want ErrNotFound", err)
		}
		if err := p.ClientAssertionJWTValid(bg, "jti-old"); err != nil {
			t.Errorf("the expired JTI: got %v; want nil", err)
		}
	})

	t.Run("a database that is not empty is refused and left as it was", func(t *testing.T) {
		users := queryInt(t, pgURL, "SELECT count(*) FROM users")
		err := p.Import(bg, func(ctx context.Context, sink store.Sink) error {
			_, err := b.Export(ctx, sink)
			return err
		})
		if !errors.Is(err, postgres.ErrNotEmpty) {
			t.Errorf("Import into a migrated database: got %v; want ErrNotEmpty", err)
		}
		if n := queryInt(t, pgURL, "SELECT count(*) FROM users"); n != users {
			t.Errorf("users after the refused import: got %d; want %d", n, users)
		}
	})

	t.Run("a database with only a secret is not empty", func(t *testing.T) {
		q := open(t, pgtest.URL(t), &postgres.Options{NoTokenCache: true})
		if _, err := q.Secret(bg, "token-hmac", 32); err != nil {
			t.Fatal(err)
		}
		err := q.Import(bg, func(ctx context.Context, sink store.Sink) error { return nil })
		if !errors.Is(err, postgres.ErrNotEmpty) {
			t.Errorf("Import into a database a server started on: got %v; want ErrNotEmpty", err)
		}
	})

	t.Run("an import that fails half way leaves the database empty", func(t *testing.T) {
		url := pgtest.URL(t)
		q := open(t, url, &postgres.Options{NoTokenCache: true})
		boom := errors.New("boom")
		err := q.Import(bg, func(ctx context.Context, sink store.Sink) error {
			if err := sink.ImportUser(ctx, store.User{Name: "x", CreatedAt: time.Now(), UpdatedAt: time.Now()}, "hash"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("Import: got %v; want boom", err)
		}
		if n := queryInt(t, url, "SELECT count(*) FROM users"); n != 0 {
			t.Errorf("users after a failed import: got %d; want 0", n)
		}
	})
}

// TestImportReleaseV1 copies the database release v1 wrote
// (store/testdata/release-v1.db.gz, storetest.LoadReleaseV1) into
// PostgreSQL, as `mcpd migrate-to-postgres` does after an upgrade, and uses
// its records there: passwords, clients of every source, notes, live
// tokens, the live code, the rotated refresh token and its successor.
func TestImportReleaseV1(t *testing.T) {
	dir := t.TempDir()
	fx, _ := storetest.LoadReleaseV1(t, dir)
	b, err := store.Open(dir, nil)
	must(t, err)
	defer b.Close()
	url := pgtest.URL(t)
	p := open(t, url, nil)
	must(t, p.Import(bg, func(ctx context.Context, sink store.Sink) error {
		_, err := b.Export(ctx, sink)
		return err
	}))
	for name, pw := range fx.Users {
		if err := p.Authenticate(bg, name, pw); err != nil {
			t.Errorf("Authenticate %s: %v", name, err)
		}
	}
	for _, c := range fx.Clients {
		got, err := p.LookupClient(bg, c.ID)
		if err != nil || got.Source != c.Source {
			t.Errorf("client %s: %v, %v; want source %s", c.ID, got, err, c.Source)
		}
	}
	for _, n := range fx.Notes {
		if got, err := p.GetNote(bg, n.Owner, n.ID); err != nil || got.Body != n.Body {
			t.Errorf("note %s of %s: %v, %v", n.ID, n.Owner, got, err)
		}
	}
	for _, g := range fx.Grants {
		if g.Revoked || g.Expired {
			continue
		}
		info, err := p.LookupAccessToken(bg, storetest.Signature(g.Access))
		if err != nil || info.Subject != g.Subject || !info.Active {
			t.Errorf("%s: access token %+v, %v", g.Name, info, err)
		}
	}
	admin := fx.Grant(t, "admin-public")
	if _, err := p.GetRefreshTokenSession(bg, storetest.Signature(admin.Rotated), &fosite.DefaultSession{}); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("the rotated refresh token: %v; want fosite.ErrInactiveToken", err)
	}
	if sealed, err := p.GetRefreshSuccessor(bg, storetest.Signature(admin.Rotated)); err != nil || len(sealed) == 0 {
		t.Errorf("its successor: %d bytes, %v", len(sealed), err)
	}
	req, err := p.GetRefreshTokenSession(bg, storetest.Signature(admin.Refresh), &fosite.DefaultSession{})
	if err != nil || req.GetSession().GetSubject() != "admin" {
		t.Fatalf("the live refresh token: %v, %v", req, err)
	}
	tctx, err := p.BeginTX(bg)
	must(t, err)
	must(t, p.RotateRefreshToken(tctx, req.GetID(), storetest.Signature(admin.Refresh)))
	must(t, p.Commit(tctx))
	for _, c := range fx.Codes {
		_, err := p.GetAuthorizeCodeSession(bg, storetest.Signature(c.Code), &fosite.DefaultSession{})
		if c.Used != errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || (!c.Used && err != nil) {
			t.Errorf("code (used %v): %v", c.Used, err)
		}
		if c.Used {
			// Release v1 kept a used code whole; the copy is its tombstone.
			if data := tokenData(t, url, "c", storetest.Signature(c.Code)); strings.Contains(data, "granted_scopes") || strings.Contains(data, "form") {
				t.Errorf("the used code was copied whole: %s", data)
			}
		}
	}
	if data := tokenData(t, url, "r", storetest.Signature(admin.Rotated)); strings.Contains(data, "granted_scopes") || strings.Contains(data, "form") {
		t.Errorf("the rotated refresh token was copied whole: %s", data)
	}
	for _, c := range fx.Consents {
		if _, err := p.GetConsent(bg, c.User, c.ClientID); err != nil {
			t.Errorf("consent of %s for %s: %v", c.User, c.ClientID, err)
		}
	}
	if err := p.ClientAssertionJWTValid(bg, fx.JTIs[0]); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Errorf("the live JTI: %v; want fosite.ErrJTIKnown", err)
	}
	if err := p.ClientAssertionJWTValid(bg, fx.JTIs[1]); err != nil {
		t.Errorf("the expired JTI: %v; want it not copied", err)
	}
}

// tokenData returns the stored JSON of a token row.
func tokenData(t *testing.T, url, kind, signature string) string {
	t.Helper()
	conn, err := pgx.Connect(bg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	var data string
	if err := conn.QueryRow(bg, "SELECT data::text FROM tokens WHERE kind = $1 AND key = $2", kind, store.SigHash(signature)).Scan(&data); err != nil {
		t.Fatalf("the %s row: %v", kind, err)
	}
	return data
}

// TestImportCarriesTombstones: the tombstones of a bbolt file keep, in
// PostgreSQL, their order of retirement, so rotations there go on pruning
// the oldest ones first, and their lean form.
func TestImportCarriesTombstones(t *testing.T) {
	const keep = 3
	b, err := store.Open(t.TempDir(), &store.Options{KeepRotated: keep})
	must(t, err)
	defer b.Close()
	must(t, b.CreateClient(bg, &store.Client{ID: "c1", TokenEndpointAuthMethod: "none", Source: store.SourceDynamic}))
	// Every token of the chain expires at the same second, so only the
	// order of retirement tells the oldest.
	exp := time.Now().Add(24 * time.Hour).Round(time.Second)
	req := func() *fosite.Request {
		r := newRequest("g1", "c1", "alice")
		r.Session.SetExpiresAt(fosite.RefreshToken, exp)
		return r
	}
	sig := func(i int) string { return fmt.Sprintf("rt-%d", i) }
	must(t, b.CreateRefreshTokenSession(bg, sig(0), "", req()))
	rotate := func(s store.FositeStorage, i int) {
		t.Helper()
		tctx, err := s.BeginTX(bg)
		must(t, err)
		must(t, s.RotateRefreshToken(tctx, "g1", sig(i-1)))
		must(t, s.CreateRefreshTokenSession(tctx, sig(i), "", req()))
		must(t, s.Commit(tctx))
	}
	// Keys are hashes: in key order the chain is shuffled.
	for i := 1; i <= 5; i++ {
		rotate(b, i)
	}
	url := pgtest.URL(t)
	p := open(t, url, &postgres.Options{KeepRotated: keep, NoTokenCache: true})
	must(t, p.Import(bg, func(ctx context.Context, sink store.Sink) error {
		_, err := b.Export(ctx, sink)
		return err
	}))
	state := func() []string {
		var out []string
		for i := 0; i <= 7; i++ {
			_, err := p.GetRefreshTokenSession(bg, sig(i), &fosite.DefaultSession{})
			switch {
			case err == nil:
				out = append(out, "live")
			case errors.Is(err, fosite.ErrInactiveToken):
				out = append(out, "tombstone")
			case errors.Is(err, fosite.ErrNotFound):
				out = append(out, "gone")
			default:
				t.Fatalf("%s: %v", sig(i), err)
			}
		}
		return out
	}
	want := []string{"gone", "gone", "tombstone", "tombstone", "tombstone", "live", "gone", "gone"}
	if diff := cmp.Diff(want, state()); diff != "" {
		t.Errorf("after the import (-want +got):\n%s", diff)
	}
	if data := tokenData(t, url, "r", sig(2)); strings.Contains(data, "granted_scopes") {
		t.Errorf("a tombstone was copied whole: %s", data)
	}
	rotate(p, 6)
	rotate(p, 7)
	want = []string{"gone", "gone", "gone", "gone", "tombstone", "tombstone", "tombstone", "live"}
	if diff := cmp.Diff(want, state()); diff != "" {
		t.Errorf("after two rotations on PostgreSQL (-want +got):\n%s", diff)
	}
}
