package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
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
