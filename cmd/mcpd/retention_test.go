package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
	"github.com/mcpd/mcpd/store/storetest"
)

// refreshSignature is the signature fosite keys a refresh token by: the
// part after the dot, without the grant binding mcpd appends after "~".
func refreshSignature(token string) string {
	sig, _, _ := strings.Cut(storetest.Signature(token), "~")
	return sig
}

// TestForgottenReuseRevokesTheGrant: once a grant has rotated past
// store.DefaultKeepRotated tokens, the database no longer holds its first
// refresh token, on either backend; reusing that token still revokes the
// grant, from the grant the token names (authz/refresh_binding.go).
func TestForgottenReuseRevokesTheGrant(t *testing.T) {
	for _, backend := range []struct {
		name  string
		where func(t *testing.T) []string
	}{
		{"bbolt", func(t *testing.T) []string { return []string{"--data", filepath.Join(t.TempDir(), "data")} }},
		{"postgres", func(t *testing.T) []string {
			return []string{"--data", filepath.Join(t.TempDir(), "data"), "--database", pgtest.URL(t)}
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			where := backend.where(t)
			// The same address after the restart: the tokens' audience.
			args := append([]string{"--refresh-grace", "0s", "--listen", freeAddr(t)}, where...)
			ts := startServer(t, args...)
			mustMcpd(t, "alice-pw\n", append([]string{"user", "add", "alice", "--password-stdin"}, where...)...)
			clientID, redirect := publicClient(t, ts.URL, "Rotating Client")
			tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
			first := tok.RefreshToken
			for range store.DefaultKeepRotated + 2 {
				tok = refresh(t, ts.URL, clientID, tok.RefreshToken)
			}

			// The server stopped, the database says what it keeps.
			ts.Stop(t)
			database, data := "", where[1]
			if len(where) > 2 {
				database = where[3]
			}
			db, err := openBackend(context.Background(), database, data, slog.New(slog.DiscardHandler), false, store.CheckAuto)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetRefreshTokenSession(context.Background(), refreshSignature(first), nil); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("the first refresh token after %d rotations: %v; want it forgotten (fosite.ErrNotFound)", store.DefaultKeepRotated+2, err)
			}
			if _, err := db.GetRefreshTokenSession(context.Background(), refreshSignature(tok.RefreshToken), nil); err != nil {
				t.Errorf("the live refresh token: %v", err)
			}
			db.Close()

			ts = startServer(t, args...)
			if st, _ := mcpStatus(t, ts.URL, tok.AccessToken); st != http.StatusOK {
				t.Fatalf("the live access token before the reuse: %d", st)
			}
			if st, out := refreshAt(t, ts.URL, clientID, first); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Errorf("reuse of the forgotten token: %d %v; want 400 invalid_grant", st, out)
			}
			if st, _ := mcpStatus(t, ts.URL, tok.AccessToken); st != http.StatusUnauthorized {
				t.Errorf("the grant's access token after the reuse: %d; want 401", st)
			}
			if st, out := refreshAt(t, ts.URL, clientID, tok.RefreshToken); st == http.StatusOK {
				t.Errorf("the grant's live refresh token after the reuse still rotates: %v", out)
			}
		})
	}
}
