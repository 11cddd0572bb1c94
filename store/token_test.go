package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mcpd/mcpd/store"
)

func newGrant(id, client, subject string) *fosite.Request {
	now := time.Now().UTC().Round(time.Second)
	r := fosite.NewRequest()
	r.ID = id
	r.RequestedAt = now
	r.Client = &store.Client{ID: client}
	r.GrantedScope = fosite.Arguments{"notes:read"}
	r.Session = &oauth2.JWTSession{
		Subject: subject,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AuthorizeCode: now.Add(10 * time.Minute),
			fosite.AccessToken:   now.Add(time.Hour),
			fosite.RefreshToken:  now.Add(24 * time.Hour),
		},
	}
	return r
}

// issuePair stores an access and a refresh token of a grant.
func issuePair(t *testing.T, s *store.Store, req fosite.Requester, at, rt string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateAccessTokenSession(ctx, at, req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(ctx, rt, at, req); err != nil {
		t.Fatal(err)
	}
}

func accessAlive(s *store.Store, sig string) bool {
	_, err := s.GetAccessTokenSession(context.Background(), sig, nil)
	return err == nil
}

func refreshAlive(s *store.Store, sig string) bool {
	_, err := s.GetRefreshTokenSession(context.Background(), sig, nil)
	return err == nil
}

func TestFositeRecords(t *testing.T) {
	ctx := context.Background()

	t.Run("the session is decoded into the prototype the caller passes", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		proto := &oauth2.JWTSession{}
		req, err := s.GetAccessTokenSession(ctx, "at1", proto)
		if err != nil {
			t.Fatal(err)
		}
		if req.GetSession() != fosite.Session(proto) {
			t.Errorf("got session %p; want the prototype %p", req.GetSession(), proto)
		}
		if proto.Subject != "alice" {
			t.Errorf("prototype subject: got %q; want %q", proto.Subject, "alice")
		}
		if _, ok := req.GetClient().(*store.Client); !ok {
			t.Errorf("client: got %T; want *store.Client", req.GetClient())
		}
	})

	t.Run("neither secrets from the form nor signatures reach the file", func(t *testing.T) {
		s := openTest(t, &store.Options{MaxGroup: 1})
		addClient(t, s, "c1")
		req := newGrant("g1", "c1", "alice")
		req.Form = url.Values{
			"redirect_uri":  {"http://127.0.0.1/"},
			"client_secret": {"SECRET-client-secret"},
			"code_verifier": {"SECRET-code-verifier"},
			"refresh_token": {"SECRET-refresh-token"},
			"code":          {"SECRET-code"},
			"password":      {"SECRET-password"},
		}
		issuePair(t, s, req, "SIGNATURE-access", "SIGNATURE-refresh")
		if err := s.CreateAuthorizeCodeSession(ctx, "SIGNATURE-code", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAuthorizeCodeSession(ctx, "SIGNATURE-code", nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(url.Values{"redirect_uri": {"http://127.0.0.1/"}}, got.GetRequestForm()); diff != "" {
			t.Errorf("stored form (-want +got):\n%s", diff)
		}
		var buf bytes.Buffer
		if _, err := s.Backup(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{raw, buf.Bytes()} {
			for _, needle := range []string{"SECRET", "SIGNATURE"} {
				if bytes.Contains(b, []byte(needle)) {
					t.Errorf("database holds %q", needle)
				}
			}
		}
	})

	t.Run("a token of a deleted client is gone", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		addClient(t, s, "c2")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		issuePair(t, s, newGrant("g2", "c2", "alice"), "at2", "rt2")
		if err := s.DeleteClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at1", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("access token of the deleted client: got %v; want fosite.ErrNotFound", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt1", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("refresh token of the deleted client: got %v; want fosite.ErrNotFound", err)
		}
		if !accessAlive(s, "at2") || !refreshAlive(s, "rt2") {
			t.Errorf("tokens of the other client died")
		}
	})

	t.Run("rotating an already rotated refresh token is a serialization failure and changes nothing", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		if err := s.RotateRefreshToken(ctx, "g1", "rt1"); err != nil {
			t.Fatal(err)
		}
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at2", "rt2")
		if err := s.RotateRefreshToken(ctx, "g1", "rt1"); !errors.Is(err, fosite.ErrSerializationFailure) {
			t.Errorf("second rotation: got %v; want fosite.ErrSerializationFailure", err)
		}
		if !accessAlive(s, "at2") || !refreshAlive(s, "rt2") {
			t.Errorf("the first rotation's successor died")
		}
	})

	t.Run("rotating with another grant's request id is not found", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		if err := s.RotateRefreshToken(ctx, "g2", "rt1"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("got %v; want fosite.ErrNotFound", err)
		}
		if !refreshAlive(s, "rt1") {
			t.Errorf("refresh token died")
		}
	})

	t.Run("a nested transaction joins the outer one and its rollback dooms it", func(t *testing.T) {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		outer, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := s.BeginTX(outer)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAccessTokenSession(inner, "at1", newGrant("g1", "c1", "alice")); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(inner); err != nil {
			t.Fatalf("inner Commit: %v", err)
		}
		if !accessAliveCtx(outer, s, "at1") {
			t.Errorf("outer transaction does not see the inner write")
		}
		inner2, _ := s.BeginTX(outer)
		if err := s.Rollback(inner2); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(outer); err == nil {
			t.Errorf("outer Commit after an inner Rollback: got nil; want an error")
		}
		if err := s.Rollback(outer); err != nil {
			t.Errorf("Rollback after a failed Commit: %v", err)
		}
		if accessAlive(s, "at1") {
			t.Errorf("write of a doomed transaction is visible")
		}
	})

	t.Run("a context whose transaction is closed is refused", func(t *testing.T) {
		s := openTest(t, nil)
		tctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupClient(tctx, "c1"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupClient on a closed transaction: got %v; want a closed-transaction error", err)
		}
	})
}

func accessAliveCtx(ctx context.Context, s *store.Store, sig string) bool {
	_, err := s.GetAccessTokenSession(ctx, sig, nil)
	return err == nil
}

func TestGrantAdministration(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *store.Store {
		s := openTest(t, nil)
		addClient(t, s, "c1")
		addClient(t, s, "c2")
		issuePair(t, s, newGrant("g1", "c1", "alice"), "at1", "rt1")
		issuePair(t, s, newGrant("g2", "c1", "bob"), "at2", "rt2")
		issuePair(t, s, newGrant("g3", "c2", "alice"), "at3", "rt3")
		if err := s.CreateAuthorizeCodeSession(ctx, "code4", newGrant("g4", "c1", "alice")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	alive := func(s *store.Store) map[string]bool {
		return map[string]bool{
			"at1": accessAlive(s, "at1"), "rt1": refreshAlive(s, "rt1"),
			"at2": accessAlive(s, "at2"), "rt2": refreshAlive(s, "rt2"),
			"at3": accessAlive(s, "at3"), "rt3": refreshAlive(s, "rt3"),
		}
	}

	t.Run("live grants count grants with a live token per client", func(t *testing.T) {
		s := setup(t)
		if err := s.RotateRefreshToken(ctx, "g2", "rt2"); err != nil { // g2 now has nothing live
			t.Fatal(err)
		}
		got, err := s.LiveGrants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]int{"c1": 1, "c2": 1}, got); diff != "" {
			t.Errorf("LiveGrants (-want +got):\n%s", diff)
		}
	})

	t.Run("revoking a client's grants kills its codes and tokens and nothing of other clients", func(t *testing.T) {
		s := setup(t)
		n, err := s.RevokeClientGrants(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("RevokeClientGrants: got %d grants; want 3", n)
		}
		want := map[string]bool{"at1": false, "rt1": false, "at2": false, "rt2": false, "at3": true, "rt3": true}
		if diff := cmp.Diff(want, alive(s)); diff != "" {
			t.Errorf("alive tokens (-want +got):\n%s", diff)
		}
		if _, err := s.GetAuthorizeCodeSession(ctx, "code4", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("code of the client: got %v; want fosite.ErrNotFound", err)
		}
		if n, _ := s.RevokeClientGrants(ctx, "c1"); n != 0 {
			t.Errorf("second RevokeClientGrants: got %d grants; want 0", n)
		}
	})

	t.Run("revoking a subject's grants kills every grant of that user only", func(t *testing.T) {
		s := setup(t)
		n, err := s.RevokeSubjectGrants(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("RevokeSubjectGrants: got %d grants; want 3", n)
		}
		want := map[string]bool{"at1": false, "rt1": false, "at2": true, "rt2": true, "at3": false, "rt3": false}
		if diff := cmp.Diff(want, alive(s)); diff != "" {
			t.Errorf("alive tokens (-want +got):\n%s", diff)
		}
	})
}
