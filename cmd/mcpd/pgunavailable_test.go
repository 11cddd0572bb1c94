package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// unavailableServer is a server on PostgreSQL with a confidential client,
// a token of it and an MCP session with that token.
type unavailableServer struct {
	ts             *testServer
	id, secret     string
	token          string
	cs             *mcp.ClientSession
	started        time.Time
	registerStatus func() (int, map[string]any)
}

func newUnavailableServer(t *testing.T, database string) *unavailableServer {
	t.Helper()
	u := &unavailableServer{started: time.Now()}
	u.ts = startServer(t, "--database", database, "--log-level", "info",
		"--registrations-per-minute", "1000", "--registrations-per-minute-total", "10000")
	reg := registerClient(t, u.ts.URL, map[string]any{
		"client_name": "unavailable", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	})
	u.id, u.secret = reg["client_id"].(string), reg["client_secret"].(string)
	// The first user is created while the server starts serving; a
	// database that fails under that ends serve (firstuser.go).
	waitFor(t, func() bool { return strings.Contains(u.ts.Stderr.String(), "created the first user") })
	st, out, _ := tokenAnswer(t, u.ts.URL, u.id, u.secret)
	if st != http.StatusOK {
		t.Fatalf("first token: %d %v", st, out)
	}
	u.token = out["access_token"].(string)
	u.cs = connectMCP(t, u.ts.URL, u.token)
	u.registerStatus = func() (int, map[string]any) {
		resp, err := http.Post(u.ts.URL+"/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	return u
}

// wantTokenUnavailable checks that /token answers 503
// temporarily_unavailable with Retry-After.
func (u *unavailableServer) wantTokenUnavailable(t *testing.T) {
	t.Helper()
	st, out, h := tokenAnswer(t, u.ts.URL, u.id, u.secret)
	if st != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" || h.Get("Retry-After") == "" {
		t.Errorf("/token: %d %v, Retry-After %q; want 503 temporarily_unavailable with Retry-After", st, out, h.Get("Retry-After"))
	}
}

// wantRegisterUnavailable checks that /register answers 503
// temporarily_unavailable.
func (u *unavailableServer) wantRegisterUnavailable(t *testing.T) {
	t.Helper()
	if st, out := u.registerStatus(); st != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
		t.Errorf("/register: %d %v; want 503 temporarily_unavailable", st, out)
	}
}

// wantNoteSaveToolError checks that note_save is a tool error saying to
// try again later, as on a full bbolt disk.
func (u *unavailableServer) wantNoteSaveToolError(t *testing.T) {
	t.Helper()
	res, err := u.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": "b"}})
	if err != nil {
		t.Fatalf("note_save: %v", err)
	}
	if !res.IsError || !strings.Contains(toolText(res), "try again later") {
		t.Errorf("note_save: error %v %q; want a tool error saying to try again later", res.IsError, toolText(res))
	}
}

// wantDegraded checks that /healthz stays 200 saying why writes fail,
// and that ?writes=1 is 503.
func (u *unavailableServer) wantDegraded(t *testing.T, why string) {
	t.Helper()
	st, body, h := get(t, u.ts.URL+"/healthz")
	if st != http.StatusOK || !strings.HasPrefix(body, "degraded: writes fail") || !strings.Contains(body, why) || h.Get("X-Mcpd-Writes") != "failing" {
		t.Errorf("/healthz: %d %q %q; want 200 degraded: writes fail … %s", st, body, h.Get("X-Mcpd-Writes"), why)
	}
	if st, _, _ := get(t, u.ts.URL+"/healthz?writes=1"); st != http.StatusServiceUnavailable {
		t.Errorf("/healthz?writes=1: %d; want 503", st)
	}
}

// wantLoggedOnce checks that the store said why once a minute and that
// no request logged an error of its own.
func (u *unavailableServer) wantLoggedOnce(t *testing.T, why string) {
	t.Helper()
	logs := u.ts.Stderr.String()
	minutes := int(time.Since(u.started)/time.Minute) + 1
	if n := strings.Count(logs, "store: writes fail: "+why); n < 1 || n > minutes {
		t.Errorf("%d lines saying writes fail: %s in %d minute(s); want 1 to %d:\n%s", n, why, minutes, minutes, logs)
	}
	if n := strings.Count(logs, `"level":"ERROR"`) - strings.Count(logs, `"level":"ERROR","msg":"store: writes fail: `); n > 0 {
		t.Errorf("%d error lines besides the store's; want none:\n%s", n, logs)
	}
}

// wantResumed waits until /token answers again, then checks that every
// write works and /healthz says so, without a restart.
func (u *unavailableServer) wantResumed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, out, _ := tokenAnswer(t, u.ts.URL, u.id, u.secret)
		if st == http.StatusOK {
			break
		}
		if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/token while the database comes back: %d %v; want 503 until it answers 200 (within 10 s)", st, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, out := u.registerStatus(); st != http.StatusCreated {
		t.Errorf("/register after: %d %v", st, out)
	}
	if st, body, _ := get(t, u.ts.URL+"/healthz?writes=1"); st != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz?writes=1 after: %d %q", st, body)
	}
	res, err := u.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": "b"}})
	if err != nil || res.IsError {
		t.Errorf("note_save after: %v %q", err, toolText(res))
	}
}

// TestPostgresUnavailable: on PostgreSQL, a database that turns
// read-only, fills its disk or goes away is answered as a full bbolt disk
// is (TestDiskFullServe): /token and /register 503
// temporarily_unavailable, note writes a tool error, /healthz says why,
// the log says it once; and service resumes by itself.
func TestPostgresUnavailable(t *testing.T) {
	t.Run("a read-only database (a failover onto a hot standby)", func(t *testing.T) {
		database, role := pgtest.Role(t, pgtest.URL(t))
		u := newUnavailableServer(t, database)
		pgtest.SetReadOnly(t, role, true)
		// The sessions the standby ended make the first requests fail too.
		waitFor(t, func() bool {
			st, out, _ := tokenAnswer(t, u.ts.URL, u.id, u.secret)
			if st != http.StatusServiceUnavailable {
				t.Fatalf("/token: %d %v; want 503", st, out)
			}
			_, body, _ := get(t, u.ts.URL+"/healthz")
			return strings.Contains(body, "read-only")
		})
		u.wantTokenUnavailable(t)
		u.wantRegisterUnavailable(t)
		u.wantNoteSaveToolError(t)
		if got := whoami(t, u.cs); got["client_id"] != u.id {
			t.Errorf("whoami (a read) on a read-only database = %v", got)
		}
		u.wantDegraded(t, "read-only")
		u.wantLoggedOnce(t, "the database is read-only")
		pgtest.SetReadOnly(t, role, false) // the standby promoted
		u.wantResumed(t)
	})

	t.Run("a database that goes away (stopped, the network down)", func(t *testing.T) {
		proxy, database := pgtest.NewProxy(t, pgtest.URL(t))
		u := newUnavailableServer(t, database)
		proxy.Down()
		u.wantTokenUnavailable(t)
		u.wantRegisterUnavailable(t)
		// Once the cache stops trusting what it read (its listener lost
		// the database), /mcp cannot check a token: 503, not 500.
		waitFor(t, func() bool {
			st, _ := mcpStatus(t, u.ts.URL, u.token)
			if st != http.StatusOK && st != http.StatusServiceUnavailable {
				t.Fatalf("/mcp while the database is away: %d; want 503 (or 200 from the cache)", st)
			}
			return st == http.StatusServiceUnavailable
		})
		if st, _, _ := get(t, u.ts.URL+"/healthz"); st != http.StatusServiceUnavailable {
			t.Errorf("/healthz while the database is away: %d; want 503", st)
		}
		u.wantLoggedOnce(t, "the database does not answer")
		proxy.Up()
		u.wantResumed(t)
		if st, _ := mcpStatus(t, u.ts.URL, u.token); st != http.StatusOK {
			t.Errorf("/mcp after: %d", st)
		}
	})

	t.Run("a full disk under the database", func(t *testing.T) {
		database := pgtest.URL(t)
		u := newUnavailableServer(t, database)
		spare := pgtest.SmallDisk(t, database, 1<<20, 256<<10, "tokens", "clients", "notes")
		// As on bbolt, a write that finds room in a page still succeeds:
		// flood until every write fails.
		for i, failures := 0, 0; failures < 20; i++ {
			if i == 20000 {
				t.Fatal("the disk never filled")
			}
			switch st, out, _ := tokenAnswer(t, u.ts.URL, u.id, u.secret); st {
			case http.StatusOK:
				failures = 0
			case http.StatusServiceUnavailable:
				failures++
			default:
				t.Fatalf("token %d: %d %v; want 200 or 503", i, st, out)
			}
		}
		u.wantTokenUnavailable(t)
		for i := 0; ; i++ { // until one needs a page the disk has not got
			st, out := u.registerStatus()
			if st == http.StatusServiceUnavailable && out["error"] == "temporarily_unavailable" {
				break
			}
			if st != http.StatusCreated || i == 200 {
				t.Fatalf("/register on a full disk: %d %v", st, out)
			}
		}
		for i := 0; ; i++ {
			res, err := u.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "t", "body": strings.Repeat("b", 4000)}})
			if err != nil {
				t.Fatal(err)
			}
			if res.IsError {
				if !strings.Contains(toolText(res), "try again later") {
					t.Errorf("note_save tool error %q; want it to say to try again later", toolText(res))
				}
				break
			}
			if i == 200 {
				t.Fatal("no note_save failed on a full disk")
			}
		}
		if st, _ := mcpStatus(t, u.ts.URL, u.token); st != http.StatusOK {
			t.Errorf("an issued token on a full disk: %d; want 200", st)
		}
		u.wantTokenUnavailable(t) // the last write failed
		u.wantDegraded(t, "disk is full")
		u.wantLoggedOnce(t, "the database's disk is full")
		if err := os.Remove(spare); err != nil {
			t.Fatal(err)
		}
		u.wantResumed(t)
	})
}
