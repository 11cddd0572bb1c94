package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.etcd.io/bbolt"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
	"github.com/mcpd/mcpd/store/storetest"
)

// postToken posts form to /token and returns the status and JSON answer.
func postToken(t *testing.T, issuer string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestUpgradeFromReleaseV1 serves the database release v1 (2f7baa7) wrote
// with this build and uses it as that release's clients would: the
// release's tokens, codes, grace-window successors, notes and admin data
// all work, and reuse is still detected.
func TestUpgradeFromReleaseV1(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	fx, _ := storetest.LoadReleaseV1(t, data)
	// The tokens' audience is the release's issuer: serve under it.
	ts := startServer(t, "--data", data, "--issuer", fx.Issuer)
	useReleaseV1(t, fx, ts.URL, "--data", data)

	t.Run("the file passes doctor --data after the release's records were used", func(t *testing.T) {
		ts.Stop(t)
		out := mustMcpd(t, "", "doctor", "--data", data)
		if !strings.Contains(out, "schema version "+strconv.Itoa(store.SchemaVersion())) {
			t.Errorf("doctor --data:\n%s", out)
		}
	})
}

// TestMigrateReleaseV1ToPostgres copies the database release v1 wrote into
// PostgreSQL with `mcpd migrate-to-postgres`, serves it from there, and
// uses it as TestUpgradeFromReleaseV1 does on bbolt: every record the
// release left works the same after the move.
func TestMigrateReleaseV1ToPostgres(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	fx, _ := storetest.LoadReleaseV1(t, data)
	db := pgtest.URL(t)
	out := mustMcpd(t, "", "migrate-to-postgres", "--data", data, "--database", db)
	if !strings.Contains(out, "2 users, 4 clients") {
		t.Errorf("migrate-to-postgres printed %q; want the release's 2 users and 4 clients", out)
	}
	ts := startServer(t, "--database", db, "--issuer", fx.Issuer)
	useReleaseV1(t, fx, ts.URL, "--database", db)
}

// useReleaseV1 uses the records of release v1 on the server at issuer as
// that release's clients would; where names the database for the admin
// commands. The tokens, codes, grace-window successors, notes and admin
// data all work, and reuse is still detected.
func useReleaseV1(t *testing.T, fx *storetest.ReleaseV1, issuer string, where ...string) {
	admin := fx.Grant(t, "admin-public")
	alice := fx.Grant(t, "alice-public")

	t.Run("a rotated refresh token inside its grace window gets the release's answer again", func(t *testing.T) {
		st, out := postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {admin.Rotated}, "client_id": {admin.ClientID}})
		var want map[string]any
		json.Unmarshal(admin.RotatedResponse, &want)
		if st != http.StatusOK {
			t.Fatalf("replay: %d %v", st, out)
		}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("replayed answer (-release +now):\n%s", diff)
		}
	})

	t.Run("a note saved by the release reads back over MCP", func(t *testing.T) {
		cs := connectMCP(t, issuer, admin.Access)
		for _, n := range fx.Notes {
			if n.Owner != "admin" {
				continue
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_get", Arguments: map[string]any{"id": n.ID}})
			if err != nil || res.IsError {
				t.Fatalf("note_get %s: %v %q", n.ID, err, toolText(res))
			}
			got, _ := res.StructuredContent.(map[string]any)
			if got["title"] != n.Title || got["body"] != n.Body {
				t.Errorf("note %s: %v; want %q %q", n.ID, got, n.Title, n.Body)
			}
		}
	})

	t.Run("a client_credentials token of the release still works", func(t *testing.T) {
		cc := fx.Grant(t, "client-credentials")
		if got := whoami(t, connectMCP(t, issuer, cc.Access)); got["user"] != cc.Subject {
			t.Errorf("whoami = %v; want %s", got, cc.Subject)
		}
	})

	t.Run("a live refresh token of the release rotates, and its successor is bound to its grant", func(t *testing.T) {
		st, out := postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {admin.Refresh}, "client_id": {admin.ClientID}})
		if st != http.StatusOK {
			t.Fatalf("refresh: %d %v", st, out)
		}
		if !strings.Contains(out["refresh_token"].(string), "~") {
			t.Errorf("new refresh token %q names no grant", out["refresh_token"])
		}
		if got := whoami(t, connectMCP(t, issuer, out["access_token"].(string))); got["user"] != "admin" {
			t.Errorf("whoami with the new token = %v", got)
		}
		if st, _ := mcpStatus(t, issuer, admin.Access); st != http.StatusUnauthorized {
			t.Errorf("the release's access token after the rotation: %d; want 401", st)
		}
	})

	t.Run("a live code of the release exchanges for tokens", func(t *testing.T) {
		var code storetest.ReleaseCode
		for _, c := range fx.Codes {
			if !c.Used {
				code = c
			}
		}
		st, out := postToken(t, issuer, url.Values{"grant_type": {"authorization_code"}, "code": {code.Code}, "code_verifier": {code.Verifier},
			"redirect_uri": {code.RedirectURI}, "client_id": {code.ClientID}, "resource": {fx.Issuer + "/mcp"}})
		if st != http.StatusOK {
			t.Fatalf("exchange: %d %v", st, out)
		}
		if got := whoami(t, connectMCP(t, issuer, out["access_token"].(string))); got["user"] != "admin" {
			t.Errorf("whoami = %v", got)
		}
	})

	t.Run("a code the release saw used, presented again, revokes its grant", func(t *testing.T) {
		if st, _ := mcpStatus(t, issuer, alice.Access); st != http.StatusOK {
			t.Fatalf("alice's token before the reuse: %d", st)
		}
		var code storetest.ReleaseCode
		for _, c := range fx.Codes {
			if c.Used {
				code = c
			}
		}
		st, out := postToken(t, issuer, url.Values{"grant_type": {"authorization_code"}, "code": {code.Code}, "code_verifier": {code.Verifier},
			"redirect_uri": {code.RedirectURI}, "client_id": {code.ClientID}, "resource": {fx.Issuer + "/mcp"}})
		if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("reused code: %d %v; want 400 invalid_grant", st, out)
		}
		if st, _ := mcpStatus(t, issuer, alice.Access); st != http.StatusUnauthorized {
			t.Errorf("alice's token after the code's reuse: %d; want 401", st)
		}
	})

	t.Run("a grant the release revoked stays dead, and an expired token is refused", func(t *testing.T) {
		revoked := fx.Grant(t, "admin-public-revoked")
		if st, _ := mcpStatus(t, issuer, revoked.Access); st != http.StatusUnauthorized {
			t.Errorf("the revoked grant's access token: %d; want 401", st)
		}
		if st, out := postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {revoked.Refresh}, "client_id": {revoked.ClientID}}); st == http.StatusOK {
			t.Errorf("the revoked grant's refresh token rotated: %v", out)
		}
		if st, _ := mcpStatus(t, issuer, fx.Grant(t, "client-credentials-expired").Access); st != http.StatusUnauthorized {
			t.Errorf("the expired client_credentials token: %d; want 401", st)
		}
	})

	t.Run("an access token of a client registered from its metadata document still works", func(t *testing.T) {
		g := fx.Grant(t, "admin-cimd")
		if got := whoami(t, connectMCP(t, issuer, g.Access)); got["user"] != g.Subject || got["client_id"] != g.ClientID {
			t.Errorf("whoami = %v; want %s via %s", got, g.Subject, g.ClientID)
		}
	})

	t.Run("the admin commands list the release's users and clients of every source", func(t *testing.T) {
		var users []userView
		json.Unmarshal([]byte(mustMcpd(t, "", append([]string{"user", "list", "--json"}, where...)...)), &users)
		var clients []clientView
		json.Unmarshal([]byte(mustMcpd(t, "", append([]string{"client", "list", "--json"}, where...)...)), &clients)
		sources := map[string]int{}
		for _, c := range clients {
			sources[c.RegisteredBy]++
		}
		if len(users) != 2 || sources["static"] != 1 || sources["dynamic"] != 2 || sources["metadata"] != 1 {
			t.Errorf("users %v, clients by source %v; want 2 users, 1 static, 2 dynamic, 1 metadata client", users, sources)
		}
	})
}

// TestNewerDatabaseRefused: serve and the admin commands refuse a file
// a newer mcpd wrote, saying so and what to do, and leave it as it was.
func TestNewerDatabaseRefused(t *testing.T) {
	data := writtenDatabase(t)
	path := filepath.Join(data, store.FileName)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, uint64(store.SchemaVersion()+1)))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--data", data},
		{"user", "list", "--data", data},
	} {
		_, _, err := mcpd(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), "written by a newer mcpd") || !strings.Contains(err.Error(), "understands up to "+strconv.Itoa(store.SchemaVersion())) {
			t.Errorf("mcpd %s: %v; want a refusal naming the newer schema", args[0], err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the refused file was changed")
	}
}
