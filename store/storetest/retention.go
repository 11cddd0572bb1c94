package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
)

// Successors is the grace-window store of mcpd's authorization server
// (authz.SuccessorStore): the sealed answer a refresh token's rotation
// gave, under the rotated token's signature. ErrNotFound is the backend's
// own sentinel.
type Successors interface {
	PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error
	GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error)
}

// Retention is what RunRetention needs besides the fixture: how many
// rotated refresh tokens of a grant the store keeps, and its successor
// store with its not-found sentinel.
type Retention struct {
	Keep        int
	Successors  func(f Fixture) Successors
	ErrNotFound error
}

// RunRetention runs the rules of bounded growth against stores made by
// newFixture: a used code or a rotated refresh token keeps what reuse
// detection needs, and a grant that rotates for ever keeps only its newest
// r.Keep rotated tokens and their successors, so the records of a grant do
// not grow with its rotations. fosite's reference store keeps everything
// and is not held to these rules.
func RunRetention(t *testing.T, newFixture func(t *testing.T) Fixture, r Retention) {
	t.Helper()
	rules := []struct {
		name string
		fn   func(t *testing.T, f Fixture, r Retention)
	}{
		{"a rotated refresh token among the grant's newest rotated tokens is inactive with its request", testRecentRotatedKept},
		{"a grant keeps only its newest rotated refresh tokens and their successors", testOldRotatedForgotten},
		{"a revoked grant keeps only its newest refresh tokens, inactive", testRevokedBounded},
		{"forgetting a grant's rotated tokens leaves other grants alone", testRetentionPerGrant},
		{"a used code and a rotated or revoked refresh token keep a tombstone, not their scopes and form", testTombstonesLean},
	}
	for _, rule := range rules {
		t.Run(rule.name, func(t *testing.T) { rule.fn(t, newFixture(t), r) })
	}
}

// rotateChain issues refresh token 0 of g and rotates it n times, storing
// a successor for every rotation, as the token endpoint does. It returns
// the signatures of the refresh tokens, oldest first; the last is live.
func rotateChain(t *testing.T, f Fixture, r Retention, g grant, n int) []string {
	t.Helper()
	ctx := context.Background()
	var sigs []string
	chainExpiry := time.Now().Add(30 * 24 * time.Hour).Round(time.Second)
	req := newRequest(g)
	req.Session.SetExpiresAt(fosite.RefreshToken, chainExpiry)
	mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(ctx, "at-"+g.id+"-0", req))
	mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, "rt-"+g.id+"-0", "at-"+g.id+"-0", req))
	sigs = append(sigs, "rt-"+g.id+"-0")
	succ := r.Successors(f)
	for i := 1; i <= n; i++ {
		txs, ok := f.Storage.(storage.Transactional)
		if !ok {
			t.Fatalf("store %T does not implement storage.Transactional", f.Storage)
		}
		tx, err := txs.BeginTX(ctx)
		mustNil(t, "BeginTX", err)
		mustNil(t, "RotateRefreshToken", f.Storage.RotateRefreshToken(tx, g.id, sigs[i-1]))
		// Every token of the chain expires at the same second, as tokens
		// rotated within a second do: the store must know their order
		// without their expiries.
		req := newRequest(g)
		req.Session.SetExpiresAt(fosite.RefreshToken, chainExpiry)
		at, next := fmt.Sprintf("at-%s-%d", g.id, i), fmt.Sprintf("rt-%s-%d", g.id, i)
		mustNil(t, "CreateAccessTokenSession", f.Storage.CreateAccessTokenSession(tx, at, req))
		mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(tx, next, at, req))
		mustNil(t, "PutRefreshSuccessor", succ.PutRefreshSuccessor(tx, sigs[i-1], []byte("sealed "+next), time.Now().Add(time.Minute)))
		mustNil(t, "Commit", txs.Commit(tx))
		sigs = append(sigs, next)
	}
	return sigs
}

func testRecentRotatedKept(t *testing.T, f Fixture, r Retention) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	sigs := rotateChain(t, f, r, g, r.Keep)
	for i, sig := range sigs[:len(sigs)-1] {
		got, err := f.Storage.GetRefreshTokenSession(ctx, sig, proto())
		wantErr(t, fmt.Sprintf("rotated token %d", i), err, fosite.ErrInactiveToken)
		wantID(t, fmt.Sprintf("rotated token %d", i), got, g.id)
		if got != nil && got.GetClient().GetID() != g.client {
			t.Errorf("rotated token %d: client %q; want %q", i, got.GetClient().GetID(), g.client)
		}
		if _, err := r.Successors(f).GetRefreshSuccessor(ctx, sig); err != nil {
			t.Errorf("successor of rotated token %d: %v; want it kept", i, err)
		}
	}
	if _, err := f.Storage.GetRefreshTokenSession(ctx, sigs[len(sigs)-1], proto()); err != nil {
		t.Errorf("live refresh token: %v", err)
	}
}

func testOldRotatedForgotten(t *testing.T, f Fixture, r Retention) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	const extra = 5
	sigs := rotateChain(t, f, r, g, r.Keep+extra)
	for i, sig := range sigs[:extra] {
		_, err := f.Storage.GetRefreshTokenSession(ctx, sig, proto())
		wantErr(t, fmt.Sprintf("rotated token %d of %d", i, len(sigs)), err, fosite.ErrNotFound)
		if _, err := r.Successors(f).GetRefreshSuccessor(ctx, sig); !errors.Is(err, r.ErrNotFound) {
			t.Errorf("successor of forgotten token %d: %v; want it gone", i, err)
		}
	}
	for i, sig := range sigs[extra : len(sigs)-1] {
		_, err := f.Storage.GetRefreshTokenSession(ctx, sig, proto())
		wantErr(t, fmt.Sprintf("rotated token %d", extra+i), err, fosite.ErrInactiveToken)
	}
}

func testRevokedBounded(t *testing.T, f Fixture, r Retention) {
	ctx := context.Background()
	g := grant{"req-1", "client-1", "alice"}
	f.AddClient(t, g.client)
	sigs := rotateChain(t, f, r, g, r.Keep)
	mustNil(t, "RevokeRefreshToken", f.Storage.RevokeRefreshToken(ctx, g.id))
	// The live token joined the rotated ones: the oldest one went.
	_, err := f.Storage.GetRefreshTokenSession(ctx, sigs[0], proto())
	wantErr(t, "oldest rotated token after the revocation", err, fosite.ErrNotFound)
	for i, sig := range sigs[1:] {
		got, err := f.Storage.GetRefreshTokenSession(ctx, sig, proto())
		wantErr(t, fmt.Sprintf("token %d after the revocation", i+1), err, fosite.ErrInactiveToken)
		wantID(t, fmt.Sprintf("token %d after the revocation", i+1), got, g.id)
	}
}

func testRetentionPerGrant(t *testing.T, f Fixture, r Retention) {
	ctx := context.Background()
	g1 := grant{"req-1", "client-1", "alice"}
	g2 := grant{"req-2", "client-1", "alice"}
	f.AddClient(t, g1.client)
	old := rotateChain(t, f, r, g2, 1)
	rotateChain(t, f, r, g1, r.Keep+3)
	_, err := f.Storage.GetRefreshTokenSession(ctx, old[0], proto())
	wantErr(t, "the other grant's rotated token", err, fosite.ErrInactiveToken)
	if _, err := f.Storage.GetRefreshTokenSession(ctx, old[1], proto()); err != nil {
		t.Errorf("the other grant's live token: %v", err)
	}
}

// testTombstonesLean: what a used code or a retired refresh token keeps is
// a tombstone, its grant, client and session's extra claims (the DPoP
// binding), and not the scopes, audience and form of the request, which
// only a live token needs; whether or not it was read just before (as the
// token endpoint reads it, and a backend may make the tombstone from that
// read).
func testTombstonesLean(t *testing.T, f Fixture, _ Retention) {
	ctx := context.Background()
	f.AddClient(t, "client-1")
	bound := func(g grant) *fosite.Request {
		r := newRequest(g)
		r.Session = &fosite.DefaultSession{Subject: g.subject, Username: g.subject,
			ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: time.Now().Add(time.Hour), fosite.RefreshToken: time.Now().Add(time.Hour), fosite.AuthorizeCode: time.Now().Add(time.Hour)},
			Extra:     map[string]any{"dpop_jkt": "code-key", "cnf": map[string]any{"jkt": "token-key"}}}
		return r
	}
	for _, readFirst := range []bool{false, true} {
		n := 1
		if readFirst {
			n = 2
		}
		g := grant{fmt.Sprintf("req-%d", n), "client-1", "alice"}
		g2 := grant{fmt.Sprintf("req-revoked-%d", n), "client-1", "alice"}
		code, rt, rt2 := fmt.Sprintf("code-%d", n), fmt.Sprintf("rt-%d", n), fmt.Sprintf("rt-revoked-%d", n)
		mustNil(t, "CreateAuthorizeCodeSession", f.Storage.CreateAuthorizeCodeSession(ctx, code, bound(g)))
		mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, rt, "at", bound(g)))
		mustNil(t, "CreateRefreshTokenSession", f.Storage.CreateRefreshTokenSession(ctx, rt2, "at", bound(g2)))
		if readFirst {
			_, err := f.Storage.GetAuthorizeCodeSession(ctx, code, proto())
			mustNil(t, "GetAuthorizeCodeSession", err)
			_, err = f.Storage.GetRefreshTokenSession(ctx, rt, proto())
			mustNil(t, "GetRefreshTokenSession", err)
			_, err = f.Storage.GetRefreshTokenSession(ctx, rt2, proto())
			mustNil(t, "GetRefreshTokenSession", err)
		}
		mustNil(t, "InvalidateAuthorizeCodeSession", f.Storage.InvalidateAuthorizeCodeSession(ctx, code))
		mustNil(t, "RotateRefreshToken", f.Storage.RotateRefreshToken(ctx, g.id, rt))
		mustNil(t, "RevokeRefreshToken", f.Storage.RevokeRefreshToken(ctx, g2.id))
		for _, c := range []struct {
			what string
			get  func(fosite.Session) (fosite.Requester, error)
			want error
			id   string
		}{
			{"used code", func(s fosite.Session) (fosite.Requester, error) {
				return f.Storage.GetAuthorizeCodeSession(ctx, code, s)
			}, fosite.ErrInvalidatedAuthorizeCode, g.id},
			{"rotated refresh token", func(s fosite.Session) (fosite.Requester, error) { return f.Storage.GetRefreshTokenSession(ctx, rt, s) }, fosite.ErrInactiveToken, g.id},
			{"revoked refresh token", func(s fosite.Session) (fosite.Requester, error) { return f.Storage.GetRefreshTokenSession(ctx, rt2, s) }, fosite.ErrInactiveToken, g2.id},
		} {
			what := fmt.Sprintf("%s (read first: %v)", c.what, readFirst)
			req, err := c.get(&fosite.DefaultSession{})
			wantErr(t, what, err, c.want)
			wantID(t, what, req, c.id)
			if req == nil {
				continue
			}
			if got := req.GetClient().GetID(); got != g.client {
				t.Errorf("%s: client %q; want %q", what, got, g.client)
			}
			if len(req.GetRequestedScopes()) > 0 || len(req.GetGrantedScopes()) > 0 || len(req.GetGrantedAudience()) > 0 || len(req.GetRequestForm()) > 0 {
				t.Errorf("%s: scopes %v/%v, audience %v, form %v kept; want a tombstone without them",
					what, req.GetRequestedScopes(), req.GetGrantedScopes(), req.GetGrantedAudience(), req.GetRequestForm())
			}
			ds, _ := req.GetSession().(*fosite.DefaultSession)
			cnf, _ := ds.Extra["cnf"].(map[string]any)
			if ds.Subject != g.subject || ds.Extra["dpop_jkt"] != "code-key" || cnf["jkt"] != "token-key" {
				t.Errorf("%s: session subject %q, extra %v; want %s with its dpop_jkt and cnf kept", what, ds.Subject, ds.Extra, g.subject)
			}
		}
	}
}
