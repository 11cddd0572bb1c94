package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
	bolt "go.etcd.io/bbolt"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/storetest"
)

// openRelease opens a copy of the database release v1 wrote, with a clock
// a day ahead: the records the release wrote with the default lifetimes
// (an hour) have expired, those with a century have not.
func openRelease(t *testing.T) (*storetest.ReleaseV1, *store.Store) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	fx, _ := storetest.LoadReleaseV1(t, dir)
	s, err := store.Open(dir, &store.Options{Now: dayAhead})
	if err != nil {
		t.Fatalf("Open of the release v1 database: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("Check at clean-up: %v", err)
		}
		s.Close()
	})
	return fx, s
}

// TestReleaseV1Upgrade opens the database release v1 wrote, migrates it,
// and uses every kind of record in it.
func TestReleaseV1Upgrade(t *testing.T) {
	ctx := context.Background()
	fx, s := openRelease(t)

	t.Run("the file is migrated to this build's schema", func(t *testing.T) {
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.SchemaVersion != store.SchemaVersion() {
			t.Errorf("schema version %d; want %d", st.SchemaVersion, store.SchemaVersion())
		}
	})

	t.Run("users sign in with their passwords", func(t *testing.T) {
		for name, pw := range fx.Users {
			if err := s.Authenticate(ctx, name, pw); err != nil {
				t.Errorf("Authenticate %s: %v", name, err)
			}
			if err := s.Authenticate(ctx, name, pw+"x"); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("Authenticate %s with a wrong password: %v; want ErrBadCredentials", name, err)
			}
		}
	})

	t.Run("static, dynamic and metadata-document clients are there", func(t *testing.T) {
		for _, c := range fx.Clients {
			got, err := s.LookupClient(ctx, c.ID)
			if err != nil {
				t.Errorf("LookupClient %s: %v", c.ID, err)
				continue
			}
			if got.Source != c.Source || got.Name != c.Name {
				t.Errorf("client %s: source %q, name %q; want %q, %q", c.ID, got.Source, got.Name, c.Source, c.Name)
			}
			if (c.Secret != "") != (len(got.SecretHash) > 0) {
				t.Errorf("client %s: secret hash %d bytes; want one exactly when it has a secret", c.ID, len(got.SecretHash))
			}
		}
	})

	t.Run("remembered consents are there", func(t *testing.T) {
		for _, c := range fx.Consents {
			if _, err := s.GetConsent(ctx, c.User, c.ClientID); err != nil {
				t.Errorf("GetConsent %s %s: %v", c.User, c.ClientID, err)
			}
		}
	})

	t.Run("notes read back", func(t *testing.T) {
		for _, n := range fx.Notes {
			got, err := s.GetNote(ctx, n.Owner, n.ID)
			if err != nil {
				t.Errorf("GetNote %s %s: %v", n.Owner, n.ID, err)
				continue
			}
			want := []any{n.Title, n.Body, n.Tags}
			if diff := cmp.Diff(want, []any{got.Title, got.Body, got.Tags}); diff != "" {
				t.Errorf("note %s (-saved +read):\n%s", n.ID, diff)
			}
		}
	})

	t.Run("live access tokens verify, the expired one is expired", func(t *testing.T) {
		for _, g := range fx.Grants {
			if g.Revoked || g.Access == "" {
				continue
			}
			info, err := s.LookupAccessToken(ctx, storetest.Signature(g.Access))
			if err != nil {
				t.Errorf("%s: LookupAccessToken: %v", g.Name, err)
				continue
			}
			if info.Subject != g.Subject || info.ClientID != g.ClientID || !info.Active {
				t.Errorf("%s: %+v; want subject %q client %q active", g.Name, info, g.Subject, g.ClientID)
			}
			if !slices.Contains(info.GrantedAudience, fx.Issuer+"/mcp") {
				t.Errorf("%s: audience %q; want %q", g.Name, info.GrantedAudience, fx.Issuer+"/mcp")
			}
			live := dayAhead().Before(info.ExpiresAt)
			if live == g.Expired {
				t.Errorf("%s: expires at %v; want expired %v", g.Name, info.ExpiresAt, g.Expired)
			}
			req, err := s.GetAccessTokenSession(ctx, storetest.Signature(g.Access), &fosite.DefaultSession{})
			if err != nil {
				t.Errorf("%s: GetAccessTokenSession: %v", g.Name, err)
				continue
			}
			if got := req.GetSession().GetSubject(); got != g.Subject {
				t.Errorf("%s: session subject %q; want %q", g.Name, got, g.Subject)
			}
		}
	})

	t.Run("a live code and its PKCE session are there; a used code is used", func(t *testing.T) {
		for _, c := range fx.Codes {
			sig := storetest.Signature(c.Code)
			req, err := s.GetAuthorizeCodeSession(ctx, sig, &fosite.DefaultSession{})
			if c.Used {
				if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || req == nil {
					t.Errorf("used code: %v, request %v; want ErrInvalidatedAuthorizeCode with its request", err, req)
				}
				continue
			}
			if err != nil {
				t.Errorf("live code: %v", err)
				continue
			}
			if req.GetClient().GetID() != c.ClientID || req.GetRequestForm().Get("redirect_uri") != c.RedirectURI {
				t.Errorf("live code: client %q redirect %q; want %q %q", req.GetClient().GetID(), req.GetRequestForm().Get("redirect_uri"), c.ClientID, c.RedirectURI)
			}
			pk, err := s.GetPKCERequestSession(ctx, sig, &fosite.DefaultSession{})
			if err != nil || pk.GetRequestForm().Get("code_challenge") == "" {
				t.Errorf("PKCE session of the live code: %v (challenge %q)", err, pk.GetRequestForm().Get("code_challenge"))
			}
		}
	})

	t.Run("a rotated refresh token is inactive with its successor; a revoked one inactive", func(t *testing.T) {
		g := fx.Grant(t, "admin-public")
		req, err := s.GetRefreshTokenSession(ctx, storetest.Signature(g.Rotated), nil)
		if !errors.Is(err, fosite.ErrInactiveToken) || req == nil {
			t.Fatalf("rotated token: %v; want ErrInactiveToken with its request", err)
		}
		if sealed, err := s.GetRefreshSuccessor(ctx, storetest.Signature(g.Rotated)); err != nil || len(sealed) == 0 {
			t.Errorf("successor of the rotated token: %d bytes, %v", len(sealed), err)
		}
		r := fx.Grant(t, "admin-public-revoked")
		if _, err := s.GetRefreshTokenSession(ctx, storetest.Signature(r.Refresh), nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("revoked refresh token: %v; want ErrInactiveToken", err)
		}
	})

	t.Run("a live refresh token of the release rotates", func(t *testing.T) {
		g := fx.Grant(t, "alice-public")
		sig := storetest.Signature(g.Refresh)
		req, err := s.GetRefreshTokenSession(ctx, sig, &fosite.DefaultSession{})
		if err != nil {
			t.Fatal(err)
		}
		tctx, err := s.BeginTX(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RotateRefreshToken(tctx, req.GetID(), sig); err != nil {
			t.Fatal(err)
		}
		next := fosite.NewRequest()
		next.ID, next.Client, next.Session = req.GetID(), req.GetClient(), req.GetSession()
		next.GrantedScope, next.GrantedAudience = req.GetGrantedScopes(), req.GetGrantedAudience()
		if err := s.CreateAccessTokenSession(tctx, "new-access", next); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(tctx, "new-refresh", "new-access", next); err != nil {
			t.Fatal(err)
		}
		if err := storage.MaybeCommitTx(tctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupAccessToken(ctx, storetest.Signature(g.Access)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the release's access token after rotation: %v; want ErrNotFound", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, sig, nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("the rotated release token: %v; want ErrInactiveToken", err)
		}
		got, err := s.GetRefreshTokenSession(ctx, "new-refresh", &fosite.DefaultSession{})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetSession().GetSubject() != "alice" || got.GetID() != req.GetID() {
			t.Errorf("new refresh token: subject %q grant %q; want alice %q", got.GetSession().GetSubject(), got.GetID(), req.GetID())
		}
	})

	t.Run("a live JTI is known, an expired one is not", func(t *testing.T) {
		if err := s.ClientAssertionJWTValid(ctx, fx.JTIs[0]); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("live jti: %v; want ErrJTIKnown", err)
		}
		if err := s.ClientAssertionJWTValid(ctx, fx.JTIs[1]); err != nil {
			t.Errorf("expired jti: %v; want nil", err)
		}
	})

	t.Run("the janitor sweeps what expired", func(t *testing.T) {
		st, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Access != 1 || st.JTIs != 1 {
			t.Errorf("swept %+v; want the expired access token and the expired jti", st)
		}
		g := fx.Grant(t, "client-credentials-expired")
		if _, err := s.LookupAccessToken(ctx, storetest.Signature(g.Access)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired access token after the sweep: %v; want ErrNotFound", err)
		}
	})
}

// A file written by a newer mcpd is refused with a message that says so
// and what to do; the file is left as it was.
func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	setSchemaVersion(t, filepath.Join(dir, "mcpd.db"), store.SchemaVersion()+3)
	_, err = store.Open(dir, nil)
	if err == nil {
		t.Fatal("Open of a newer file succeeded")
	}
	for _, want := range []string{"newer mcpd", "schema " + itoa(store.SchemaVersion()+3), "understands up to " + itoa(store.SchemaVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("error %v is not ErrNewerSchema", err)
	}
}

func dayAhead() time.Time { return time.Now().Add(24 * time.Hour) }

func itoa(n int) string { return strconv.Itoa(n) }

// setSchemaVersion writes a schema version into a closed database file.
func setSchemaVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, uint64(v)))
	})
	if err != nil {
		t.Fatal(err)
	}
}
