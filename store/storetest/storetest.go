package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/jwt"
)

// Storage is what the suite exercises: the fosite storage contracts mcpd's
// authorization server uses.
type Storage interface {
	fosite.ClientManager
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
}

// Fixture is one fresh, empty store under test.
type Fixture struct {
	Storage Storage
	// AddClient registers a client under id, so requests made by it can be
	// stored and read back. It is called before any concurrent use.
	AddClient func(t *testing.T, id string)
}

// Run runs every fosite rule against stores made by newFixture, each rule
// on a store of its own.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, f Fixture)
	}{
		{"every getter returns fosite.ErrNotFound for an unknown key", testNotFound},
		{"a registered client is returned by GetClient", testGetClient},
		{"a stored request comes back with its id, client, scopes, audience and form", testRoundTrip},
		{"the returned request carries the stored session with its subject and expiries", testSession},
		{"a nil session prototype still returns the request", testNilSession},
		{"a used authorization code returns fosite.ErrInvalidatedAuthorizeCode with its request", testUsedCode},
		{"invalidating an unknown code returns fosite.ErrNotFound", testInvalidateUnknownCode},
		{"rotation makes the old refresh token inactive and returns it with its request", testRotation},
		{"rotation deletes the grant's access tokens and nothing of other grants", testRotationScope},
		{"revoking by request id kills every access and refresh token of that grant and nothing else", testRevokeByRequestID},
		{"revoking a request id without tokens is not an error", testRevokeUnknown},
		{"deleting one token leaves the other tokens of its grant", testDeleteOne},
		{"a PKCE session keeps its code challenge until deleted", testPKCE},
		{"a client-assertion JTI is known until it expires", testJTI},
		{"many goroutines issue, rotate and revoke grants at once", testConcurrent},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			r.fn(t, newFixture(t))
		})
	}
}

// RunTransactional runs the rules of storage.Transactional against stores
// made by newFixture; their Storage must implement it.
func RunTransactional(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	txRules := []struct {
		name string
		fn   func(t *testing.T, f Fixture, tx storage.Transactional)
	}{
		{"transaction: rollback leaves nothing behind", testRollback},
		{"transaction: reads inside see its writes and commit makes them visible", testCommit},
		{"transaction: a failed refresh rotation rolled back keeps the old token active", testRotationRollback},
	}
	for _, r := range txRules {
		t.Run(r.name, func(t *testing.T) {
			f := newFixture(t)
			tx, ok := f.Storage.(storage.Transactional)
			if !ok {
				t.Fatalf("store %T does not implement storage.Transactional", f.Storage)
			}
			r.fn(t, f, tx)
		})
	}
}

// grant is one fosite request of the suite: an id, a client, a subject.
type grant struct {
	id, client, subject string
}

func newSession(subject string, now time.Time) *oauth2.JWTSession {
	return &oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{Subject: subject, Extra: map[string]any{}},
		Subject:   subject,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AuthorizeCode: now.Add(10 * time.Minute),
			fosite.AccessToken:   now.Add(time.Hour),
			fosite.RefreshToken:  now.Add(30 * 24 * time.Hour),
		},
	}
}

// newRequest builds the request of g as fosite's token endpoint would
// store it.
func newRequest(g grant) *fosite.Request {
	now := time.Now().UTC().Round(time.Second)
	r := fosite.NewRequest()
	r.ID = g.id
	r.RequestedAt = now
	r.Client = &fosite.DefaultClient{ID: g.client}
	r.RequestedScope = fosite.Arguments{"notes:read", "notes:write"}
	r.GrantedScope = fosite.Arguments{"notes:read"}
	r.RequestedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
	r.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
	r.Form = url.Values{"redirect_uri": {"http://127.0.0.1:33418/"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	r.Session = newSession(g.subject, now)
	return r
}

func proto() *oauth2.JWTSession { return &oauth2.JWTSession{} }

func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: got error %v; want %v", what, got, want)
	}
}

// wantID checks that req is the request of grant id.
func wantID(t *testing.T, what string, req fosite.Requester, id string) {
	t.Helper()
	if req == nil {
		t.Errorf("%s: got no request; want request %q", what, id)
		return
	}
	if req.GetID() != id {
		t.Errorf("%s: got request %q; want %q", what, req.GetID(), id)
	}
}

func testNotFound(t *testing.T, f Fixture) {
	ctx := context.Background()
	checks := []struct {
		name string
		get  func() (any, error)
	}{
		{"GetClient", func() (any, error) { return f.Storage.GetClient(ctx, "nobody") }},
		{"GetAuthorizeCodeSession", func() (any, error) { return f.Storage.GetAuthorizeCodeSession(ctx, "nope", proto()) }},
		{"GetAccessTokenSession", func() (any, error) { return f.Storage.GetAccessTokenSession(ctx, "nope", proto()) }},
		{"GetRefreshTokenSession", func() (any, error) { return f.Storage.GetRefreshTokenSession(ctx, "nope", proto()) }},
		{"GetPKCERequestSession", func() (any, error) { return f.Storage.GetPKCERequestSession(ctx, "nope", proto()) }},
	}
	for _, c := range checks {
		got, err := c.get()
		wantErr(t, c.name, err, fosite.ErrNotFound)
		if got != nil && !isNilPointer(got) {
			t.Errorf("%s: got %v with the error; want nil", c.name, got)
		}
	}
}

func testGetClient(t *testing.T, f Fixture) {
	f.AddClient(t, "client-1")
	c, err := f.Storage.GetClient(context.Background(), "client-1")
	mustNil(t, "GetClient", err)
	if c.GetID() != "client-1" {
		t.Errorf("GetClient: got client %q; want %q", c.GetID(), "client-1")
	}
}

func isNilPointer(v any) bool {
	switch x := v.(type) {
	case fosite.Client:
		return x == nil
	case fosite.Requester:
		return x == nil
	}
	return false
}

func testRoundTrip(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	want := newRequest(g)
	type flat struct {
		ID, Client                   string
		RequestedAt                  time.Time
		RequestedScope, GrantedScope []string
		RequestedAud, GrantedAud     []string
		RedirectURI                  string
	}
	flatten := func(r fosite.Requester) flat {
		return flat{
			ID: r.GetID(), Client: r.GetClient().GetID(), RequestedAt: r.GetRequestedAt().UTC(),
			RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
			RequestedAud: r.GetRequestedAudience(), GrantedAud: r.GetGrantedAudience(),
			RedirectURI: r.GetRequestForm().Get("redirect_uri"),
		}
	}
	kinds := []struct {
		name   string
		create func() error
		get    func() (fosite.Requester, error)
	}{
		{"authorization code",
			func() error { return f.Storage.CreateAuthorizeCodeSession(ctx, "code-1", want) },
			func() (fosite.Requester, error) { return f.Storage.GetAuthorizeCodeSession(ctx, "code-1", proto()) }},
		{"PKCE session",
			func() error { return f.Storage.CreatePKCERequestSession(ctx, "code-1", want) },
			func() (fosite.Requester, error) { return f.Storage.GetPKCERequestSession(ctx, "code-1", proto()) }},
		{"access token",
			func() error { return f.Storage.CreateAccessTokenSession(ctx, "at-1", want) },
			func() (fosite.Requester, error) { return f.Storage.GetAccessTokenSession(ctx, "at-1", proto()) }},
		{"refresh token",
			func() error { return f.Storage.CreateRefreshTokenSession(ctx, "rt-1", "at-1", want) },
			func() (fosite.Requester, error) { return f.Storage.GetRefreshTokenSession(ctx, "rt-1", proto()) }},
	}
	for _, k := range kinds {
		mustNil(t, "create "+k.name, k.create())
		got, err := k.get()
		mustNil(t, "get "+k.name, err)
		if diff := cmp.Diff(flatten(want), flatten(got)); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", k.name, diff)
		}
	}
}

func testSession(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	req := newRequest(g)
	wantExp := req.Session.(*oauth2.JWTSession).ExpiresAt
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-1", req))
	mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))

	for _, get := range []struct {
		name string
		fn   func(fosite.Session) (fosite.Requester, error)
	}{
		{"access", func(s fosite.Session) (fosite.Requester, error) {
			return f.Storage.GetAccessTokenSession(ctx, "at-1", s)
		}},
		{"refresh", func(s fosite.Session) (fosite.Requester, error) {
			return f.Storage.GetRefreshTokenSession(ctx, "rt-1", s)
		}},
	} {
		got, err := get.fn(proto())
		mustNil(t, get.name, err)
		sess, ok := got.GetSession().(*oauth2.JWTSession)
		if !ok {
			t.Fatalf("%s: got session %T; want *oauth2.JWTSession", get.name, got.GetSession())
		}
		if sess.GetSubject() != g.subject {
			t.Errorf("%s: got subject %q; want %q", get.name, sess.GetSubject(), g.subject)
		}
		for _, tt := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken} {
			if !sess.GetExpiresAt(tt).Equal(wantExp[tt]) {
				t.Errorf("%s: got %s expiry %v; want %v", get.name, tt, sess.GetExpiresAt(tt), wantExp[tt])
			}
		}
	}
}

func testNilSession(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	req := newRequest(g)
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-1", req))
	mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
	got, err := f.Storage.GetAccessTokenSession(ctx, "at-1", nil)
	mustNil(t, "GetAccessTokenSession(nil)", err)
	wantID(t, "GetAccessTokenSession(nil)", got, g.id)
	got, err = f.Storage.GetRefreshTokenSession(ctx, "rt-1", nil)
	mustNil(t, "GetRefreshTokenSession(nil)", err)
	wantID(t, "GetRefreshTokenSession(nil)", got, g.id)
	if got.GetClient().GetID() != g.client {
		t.Errorf("GetRefreshTokenSession(nil): got client %q; want %q", got.GetClient().GetID(), g.client)
	}
}

func testUsedCode(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	mustNil(t, "CreateAuthorizeCodeSession", f.Storage.CreateAuthorizeCodeSession(ctx, "code-1", newRequest(g)))
	got, err := f.Storage.GetAuthorizeCodeSession(ctx, "code-1", proto())
	mustNil(t, "GetAuthorizeCodeSession before use", err)
	wantID(t, "GetAuthorizeCodeSession before use", got, g.id)

	mustNil(t, "InvalidateAuthorizeCodeSession", f.Storage.InvalidateAuthorizeCodeSession(ctx, "code-1"))
	got, err = f.Storage.GetAuthorizeCodeSession(ctx, "code-1", proto())
	wantErr(t, "GetAuthorizeCodeSession after use", err, fosite.ErrInvalidatedAuthorizeCode)
	wantID(t, "GetAuthorizeCodeSession after use", got, g.id)
}

func testInvalidateUnknownCode(t *testing.T, f Fixture) {
	err := f.Storage.InvalidateAuthorizeCodeSession(context.Background(), "nope")
	wantErr(t, "InvalidateAuthorizeCodeSession", err, fosite.ErrNotFound)
}

// issue stores an access and a refresh token for g, named after the
// grant and n.
func issue(t *testing.T, s Storage, g grant, n int) (access, refresh string) {
	t.Helper()
	ctx := context.Background()
	access, refresh = fmt.Sprintf("at-%s-%d", g.id, n), fmt.Sprintf("rt-%s-%d", g.id, n)
	req := newRequest(g)
	mustNil(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, access, req))
	mustNil(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, refresh, access, req))
	return access, refresh
}

// alive checks that both tokens are usable.
func alive(t *testing.T, s Storage, what, access, refresh string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetAccessTokenSession(ctx, access, proto()); err != nil {
		t.Errorf("%s: access token: got error %v; want it alive", what, err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, refresh, proto()); err != nil {
		t.Errorf("%s: refresh token: got error %v; want it alive", what, err)
	}
}

// dead checks that neither token is usable: the access token is gone and
// the refresh token is gone or inactive.
func dead(t *testing.T, s Storage, what, access, refresh string) {
	t.Helper()
	ctx := context.Background()
	_, err := s.GetAccessTokenSession(ctx, access, proto())
	wantErr(t, what+": access token", err, fosite.ErrNotFound)
	_, err = s.GetRefreshTokenSession(ctx, refresh, proto())
	if !errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("%s: refresh token: got error %v; want fosite.ErrNotFound or fosite.ErrInactiveToken", what, err)
	}
}

func testRotation(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	_, rt1 := issue(t, f.Storage, g, 1)
	mustNil(t, "RotateRefreshToken", f.Storage.RotateRefreshToken(ctx, g.id, rt1))
	got, err := f.Storage.GetRefreshTokenSession(ctx, rt1, proto())
	wantErr(t, "GetRefreshTokenSession of the rotated token", err, fosite.ErrInactiveToken)
	wantID(t, "GetRefreshTokenSession of the rotated token", got, g.id)

	at2, rt2 := issue(t, f.Storage, g, 2)
	alive(t, f.Storage, "successor", at2, rt2)
}

func testRotationScope(t *testing.T, f Fixture) {
	ctx := context.Background()
	g1 := grant{"req-1", "client-1", "alice"}
	g2 := grant{"req-2", "client-1", "alice"}
	f.AddClient(t, g1.client)
	at1, rt1 := issue(t, f.Storage, g1, 1)
	at2, rt2 := issue(t, f.Storage, g2, 1)
	mustNil(t, "RotateRefreshToken", f.Storage.RotateRefreshToken(ctx, g1.id, rt1))
	dead(t, f.Storage, "rotated grant", at1, rt1)
	alive(t, f.Storage, "other grant", at2, rt2)
}

func testRevokeByRequestID(t *testing.T, f Fixture) {
	ctx := context.Background()
	g1 := grant{"req-1", "client-1", "alice"}
	g2 := grant{"req-2", "client-1", "alice"}
	g3 := grant{"req-3", "client-2", "bob"}
	f.AddClient(t, g1.client)
	f.AddClient(t, g3.client)
	at1, rt1 := issue(t, f.Storage, g1, 1)
	at2, rt2 := issue(t, f.Storage, g2, 1)
	at3, rt3 := issue(t, f.Storage, g3, 1)
	mustNil(t, "RevokeRefreshToken", f.Storage.RevokeRefreshToken(ctx, g1.id))
	mustNil(t, "RevokeAccessToken", f.Storage.RevokeAccessToken(ctx, g1.id))
	dead(t, f.Storage, "revoked grant", at1, rt1)
	alive(t, f.Storage, "same client, other grant", at2, rt2)
	alive(t, f.Storage, "other client", at3, rt3)
}

func testRevokeUnknown(t *testing.T, f Fixture) {
	ctx := context.Background()
	if err := f.Storage.RevokeRefreshToken(ctx, "nope"); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("RevokeRefreshToken: got error %v; want nil or fosite.ErrNotFound", err)
	}
	if err := f.Storage.RevokeAccessToken(ctx, "nope"); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("RevokeAccessToken: got error %v; want nil or fosite.ErrNotFound", err)
	}
}

func testDeleteOne(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	at, rt := issue(t, f.Storage, g, 1)
	mustNil(t, "DeleteAccessTokenSession", f.Storage.DeleteAccessTokenSession(ctx, at))
	_, err := f.Storage.GetAccessTokenSession(ctx, at, proto())
	wantErr(t, "deleted access token", err, fosite.ErrNotFound)
	if _, err := f.Storage.GetRefreshTokenSession(ctx, rt, proto()); err != nil {
		t.Errorf("refresh token after deleting the access token: got error %v; want alive", err)
	}
	mustNil(t, "DeleteRefreshTokenSession", f.Storage.DeleteRefreshTokenSession(ctx, rt))
	_, err = f.Storage.GetRefreshTokenSession(ctx, rt, proto())
	wantErr(t, "deleted refresh token", err, fosite.ErrNotFound)
}

func testPKCE(t *testing.T, f Fixture) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	req := newRequest(g)
	mustNil(t, "CreatePKCERequestSession", f.Storage.CreatePKCERequestSession(ctx, "code-1", req))
	got, err := f.Storage.GetPKCERequestSession(ctx, "code-1", proto())
	mustNil(t, "GetPKCERequestSession", err)
	wantID(t, "GetPKCERequestSession", got, g.id)
	want := req.Form.Get("code_challenge")
	if c := got.GetRequestForm().Get("code_challenge"); c != want {
		t.Errorf("code_challenge: got %q; want %q", c, want)
	}
	mustNil(t, "DeletePKCERequestSession", f.Storage.DeletePKCERequestSession(ctx, "code-1"))
	_, err = f.Storage.GetPKCERequestSession(ctx, "code-1", proto())
	wantErr(t, "GetPKCERequestSession after delete", err, fosite.ErrNotFound)
}

func testJTI(t *testing.T, f Fixture) {
	ctx := context.Background()
	mustNil(t, "ClientAssertionJWTValid of a new jti", f.Storage.ClientAssertionJWTValid(ctx, "jti-1"))
	mustNil(t, "SetClientAssertionJWT", f.Storage.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Hour)))
	wantErr(t, "ClientAssertionJWTValid of a seen jti", f.Storage.ClientAssertionJWTValid(ctx, "jti-1"), fosite.ErrJTIKnown)
	wantErr(t, "SetClientAssertionJWT of a seen jti", f.Storage.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Hour)), fosite.ErrJTIKnown)
	mustNil(t, "SetClientAssertionJWT of an expired jti", f.Storage.SetClientAssertionJWT(ctx, "jti-2", time.Now().Add(-time.Minute)))
	mustNil(t, "ClientAssertionJWTValid of an expired jti", f.Storage.ClientAssertionJWTValid(ctx, "jti-2"))
}

func testConcurrent(t *testing.T, f Fixture) {
	const workers, rounds = 8, 10
	f.AddClient(t, "client-1")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if err := concurrentGrant(ctx, f.Storage, w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every grant ended where its goroutine left it.
	for w := range workers {
		for i := range rounds {
			g := grant{fmt.Sprintf("req-%d-%d", w, i), "client-1", fmt.Sprintf("user-%d", w)}
			at, rt := fmt.Sprintf("at-%s-2", g.id), fmt.Sprintf("rt-%s-2", g.id)
			if i%2 == 0 {
				dead(t, f.Storage, g.id+" (revoked)", at, rt)
			} else {
				alive(t, f.Storage, g.id+" (rotated once)", at, rt)
			}
		}
	}
}

// concurrentGrant walks grant (w, i) through a code, a PKCE session, a
// first token pair, a rotation to a second pair and, for even i, a
// revocation.
func concurrentGrant(ctx context.Context, s Storage, w, i int) error {
	g := grant{fmt.Sprintf("req-%d-%d", w, i), "client-1", fmt.Sprintf("user-%d", w)}
	code := "code-" + g.id
	steps := []struct {
		name string
		fn   func() error
	}{
		{"create code", func() error { return s.CreateAuthorizeCodeSession(ctx, code, newRequest(g)) }},
		{"create pkce", func() error { return s.CreatePKCERequestSession(ctx, code, newRequest(g)) }},
		{"get code", func() error { _, err := s.GetAuthorizeCodeSession(ctx, code, proto()); return err }},
		{"get pkce", func() error { _, err := s.GetPKCERequestSession(ctx, code, proto()); return err }},
		{"invalidate code", func() error { return s.InvalidateAuthorizeCodeSession(ctx, code) }},
		{"delete pkce", func() error { return s.DeletePKCERequestSession(ctx, code) }},
		{"create access 1", func() error { return s.CreateAccessTokenSession(ctx, "at-"+g.id+"-1", newRequest(g)) }},
		{"create refresh 1", func() error {
			return s.CreateRefreshTokenSession(ctx, "rt-"+g.id+"-1", "at-"+g.id+"-1", newRequest(g))
		}},
		{"get refresh 1", func() error { _, err := s.GetRefreshTokenSession(ctx, "rt-"+g.id+"-1", proto()); return err }},
		{"rotate", func() error { return s.RotateRefreshToken(ctx, g.id, "rt-"+g.id+"-1") }},
		{"create access 2", func() error { return s.CreateAccessTokenSession(ctx, "at-"+g.id+"-2", newRequest(g)) }},
		{"create refresh 2", func() error {
			return s.CreateRefreshTokenSession(ctx, "rt-"+g.id+"-2", "at-"+g.id+"-2", newRequest(g))
		}},
		{"get access 2", func() error { _, err := s.GetAccessTokenSession(ctx, "at-"+g.id+"-2", proto()); return err }},
	}
	if i%2 == 0 {
		steps = append(steps,
			struct {
				name string
				fn   func() error
			}{"revoke refresh", func() error { return s.RevokeRefreshToken(ctx, g.id) }},
			struct {
				name string
				fn   func() error
			}{"revoke access", func() error { return s.RevokeAccessToken(ctx, g.id) }},
		)
	}
	for _, st := range steps {
		if err := st.fn(); err != nil {
			return fmt.Errorf("grant %s: %s: %v", g.id, st.name, err)
		}
	}
	return nil
}

func testRollback(t *testing.T, f Fixture, txs storage.Transactional) {
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	ctx, err := txs.BeginTX(context.Background())
	mustNil(t, "BeginTX", err)
	req := newRequest(g)
	mustNil(t, "CreateAuthorizeCodeSession", f.Storage.CreateAuthorizeCodeSession(ctx, "code-1", req))
	mustNil(t, "CreatePKCERequestSession", f.Storage.CreatePKCERequestSession(ctx, "code-1", req))
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-1", req))
	mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
	mustNil(t, "SetClientAssertionJWT", f.Storage.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Hour)))
	mustNil(t, "Rollback", txs.Rollback(ctx))

	bg := context.Background()
	_, err = f.Storage.GetAuthorizeCodeSession(bg, "code-1", proto())
	wantErr(t, "code after rollback", err, fosite.ErrNotFound)
	_, err = f.Storage.GetPKCERequestSession(bg, "code-1", proto())
	wantErr(t, "pkce after rollback", err, fosite.ErrNotFound)
	_, err = f.Storage.GetAccessTokenSession(bg, "at-1", proto())
	wantErr(t, "access token after rollback", err, fosite.ErrNotFound)
	_, err = f.Storage.GetRefreshTokenSession(bg, "rt-1", proto())
	wantErr(t, "refresh token after rollback", err, fosite.ErrNotFound)
	mustNil(t, "jti after rollback", f.Storage.ClientAssertionJWTValid(bg, "jti-1"))
}

func testCommit(t *testing.T, f Fixture, txs storage.Transactional) {
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	ctx, err := txs.BeginTX(context.Background())
	mustNil(t, "BeginTX", err)
	req := newRequest(g)
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-1", req))
	mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, "rt-1", "at-1", req))
	got, err := f.Storage.GetAccessTokenSession(ctx, "at-1", proto())
	mustNil(t, "GetAccessTokenSession inside the transaction", err)
	wantID(t, "GetAccessTokenSession inside the transaction", got, g.id)
	mustNil(t, "Commit", txs.Commit(ctx))
	alive(t, f.Storage, "after commit", "at-1", "rt-1")
}

// testRotationRollback is what fosite's refresh handler does when a step
// after RotateRefreshToken fails.
func testRotationRollback(t *testing.T, f Fixture, txs storage.Transactional) {
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	at1, rt1 := issue(t, f.Storage, g, 1)
	ctx, err := txs.BeginTX(context.Background())
	mustNil(t, "BeginTX", err)
	mustNil(t, "RotateRefreshToken", f.Storage.RotateRefreshToken(ctx, g.id, rt1))
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-2", newRequest(g)))
	mustNil(t, "Rollback", txs.Rollback(ctx))
	alive(t, f.Storage, "old pair after rollback", at1, rt1)
	_, err = f.Storage.GetAccessTokenSession(context.Background(), "at-2", proto())
	wantErr(t, "new access token after rollback", err, fosite.ErrNotFound)
}

// ProofJTIStore is the DPoP proof replay record of mcpd's store.
type ProofJTIStore interface {
	// RememberProofJTI records key until exp; errAlreadyExists when it
	// is recorded and unexpired, changing nothing then.
	RememberProofJTI(ctx context.Context, key string, exp time.Time) error
	// ProofJTIKnown reports whether key is recorded and unexpired.
	ProofJTIKnown(ctx context.Context, key string) (bool, error)
}

// RunProofJTIs runs the rules of DPoP proof replay records against stores
// made by newStore; errAlreadyExists is the store's sentinel for a key it
// holds. Expiry is judged by the store's clock, which the rules take to be
// close to time.Now.
func RunProofJTIs(t *testing.T, newStore func(t *testing.T) ProofJTIStore, errAlreadyExists error) {
	t.Helper()
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	rules := []struct {
		name string
		fn   func(t *testing.T, s ProofJTIStore)
	}{
		{"proof jti: a new key is remembered and then known", func(t *testing.T, s ProofJTIStore) {
			known, err := s.ProofJTIKnown(ctx, "jkt:a")
			mustNil(t, "ProofJTIKnown of a new key", err)
			if known {
				t.Fatal("a key never remembered is known")
			}
			mustNil(t, "RememberProofJTI", s.RememberProofJTI(ctx, "jkt:a", later))
			known, err = s.ProofJTIKnown(ctx, "jkt:a")
			mustNil(t, "ProofJTIKnown", err)
			if !known {
				t.Fatal("a remembered key is not known")
			}
		}},
		{"proof jti: the same key again is refused with ErrAlreadyExists", func(t *testing.T, s ProofJTIStore) {
			mustNil(t, "RememberProofJTI", s.RememberProofJTI(ctx, "jkt:a", later))
			wantErr(t, "RememberProofJTI again", s.RememberProofJTI(ctx, "jkt:a", later), errAlreadyExists)
		}},
		{"proof jti: keys differing in one byte are independent", func(t *testing.T, s ProofJTIStore) {
			mustNil(t, "RememberProofJTI a", s.RememberProofJTI(ctx, "jkt1:a", later))
			mustNil(t, "RememberProofJTI b", s.RememberProofJTI(ctx, "jkt2:a", later))
			mustNil(t, "RememberProofJTI c", s.RememberProofJTI(ctx, "jkt1:b", later))
		}},
		{"proof jti: an expired key is unknown and may be remembered again", func(t *testing.T, s ProofJTIStore) {
			mustNil(t, "RememberProofJTI expired", s.RememberProofJTI(ctx, "jkt:old", time.Now().Add(-time.Minute)))
			known, err := s.ProofJTIKnown(ctx, "jkt:old")
			mustNil(t, "ProofJTIKnown", err)
			if known {
				t.Fatal("an expired key is known")
			}
			mustNil(t, "RememberProofJTI again", s.RememberProofJTI(ctx, "jkt:old", later))
		}},
		{"proof jti: a record joins the context's transaction: kept on commit, gone on rollback", func(t *testing.T, s ProofJTIStore) {
			// The token endpoint spends a proof in the transaction that
			// issues the tokens: no tokens, no record; tokens, a record
			// as durable as they are.
			txs, ok := s.(storage.Transactional)
			if !ok {
				t.Skip("the store has no transactions")
			}
			for _, commit := range []bool{false, true} {
				key := fmt.Sprintf("jkt:tx-%v", commit)
				txCtx, err := txs.BeginTX(ctx)
				mustNil(t, "BeginTX", err)
				mustNil(t, "RememberProofJTI in the transaction", s.RememberProofJTI(txCtx, key, later))
				wantErr(t, "RememberProofJTI again in the same transaction", s.RememberProofJTI(txCtx, key, later), errAlreadyExists)
				if commit {
					mustNil(t, "Commit", txs.Commit(txCtx))
				} else {
					mustNil(t, "Rollback", txs.Rollback(txCtx))
				}
				known, err := s.ProofJTIKnown(ctx, key)
				mustNil(t, "ProofJTIKnown", err)
				if known != commit {
					t.Errorf("after commit=%v the key is known=%v; want %v", commit, known, commit)
				}
			}
		}},
		{"proof jti: of many goroutines remembering one key, exactly one succeeds", func(t *testing.T, s ProofJTIStore) {
			const n = 8
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- s.RememberProofJTI(ctx, "jkt:race", later)
				}()
			}
			wg.Wait()
			close(errs)
			ok := 0
			for err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, errAlreadyExists):
					t.Errorf("RememberProofJTI: %v; want nil or ErrAlreadyExists", err)
				}
			}
			if ok != 1 {
				t.Errorf("%d of %d succeeded; want exactly 1", ok, n)
			}
		}},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) { r.fn(t, newStore(t)) })
	}
}
