package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// balancer is a round-robin reverse proxy in front of replicas, with no
// stickiness, as HAProxy runs in e2e/replicas. It counts the requests each
// replica served.
type balancer struct {
	URL    string
	served []atomic.Int64
	next   atomic.Uint64
}

// startReplicas starts n servers on one fresh PostgreSQL schema, each with
// a data directory of its own, all with the issuer issuer and the extra
// args. It returns the database URL and the servers.
func startReplicas(t *testing.T, n int, issuer string, args ...string) (string, []*testServer) {
	t.Helper()
	db := pgtest.URL(t)
	var out []*testServer
	for range n {
		out = append(out, startServer(t, append([]string{"--database", db, "--issuer", issuer, "--mcp-stateless", "true"}, args...)...))
	}
	return db, out
}

// listenerAndURL opens the balancer's listener first, so the replicas can
// be given its URL as their issuer before it serves.
func listenerAndURL(t *testing.T) (net.Listener, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l, "http://" + l.Addr().String()
}

// newBalancerOn starts a balancer serving on l.
func newBalancerOn(t *testing.T, l net.Listener, replicas []*testServer) *balancer {
	b := &balancer{served: make([]atomic.Int64, len(replicas)), URL: "http://" + l.Addr().String()}
	proxies := make([]*httputil.ReverseProxy, len(replicas))
	for i, r := range replicas {
		u, _ := url.Parse(r.URL)
		proxies[i] = httputil.NewSingleHostReverseProxy(u)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(b.next.Add(1) % uint64(len(replicas)))
		b.served[i].Add(1)
		proxies[i].ServeHTTP(w, r)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return b
}

// refreshAt posts a refresh to one replica and returns the status and
// the decoded body.
func refreshAt(t *testing.T, base, clientID, refreshToken string) (int, map[string]any) {
	t.Helper()
	return postToken(t, base, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID},
	})
}

func TestReplicasOnOnePostgres(t *testing.T) {
	l, issuer := listenerAndURL(t)
	db, replicas := startReplicas(t, 3, issuer, "--refresh-grace", "2s")
	lb := newBalancerOn(t, l, replicas)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--database", db)

	clientID, redirect := publicClient(t, lb.URL, "Replicated Client")
	tok := login(t, lb.URL, clientID, redirect, "alice", "alice-pw", "notes:read", "notes:write")

	t.Run("every replica accepts a token any replica issued, without sessions", func(t *testing.T) {
		for i, r := range replicas {
			cs := connectMCP(t, r.URL, tok.AccessToken)
			if got := whoami(t, cs); got["user"] != "alice" || got["client_id"] != clientID {
				t.Errorf("replica %d: whoami = %v; want alice via %s", i, got, clientID)
			}
		}
		before := make([]int64, len(replicas))
		for i := range replicas {
			before[i] = lb.served[i].Load()
		}
		cs := connectMCP(t, lb.URL, tok.AccessToken)
		saved := callTool(t, cs, "note_save", map[string]any{"title": "spread", "body": "over replicas"})
		for range 2 * len(replicas) {
			if got := callTool(t, cs, "note_get", map[string]any{"id": saved["id"]}); got["title"] != "spread" {
				t.Errorf("note_get through the balancer = %v", got)
			}
		}
		for i := range replicas {
			if lb.served[i].Load() == before[i] {
				t.Errorf("replica %d served none of the MCP requests through the balancer", i)
			}
		}
	})

	t.Run("concurrent refreshes of one token on two replicas get the same tokens", func(t *testing.T) {
		current := tok.RefreshToken
		for round := range 5 {
			var wg sync.WaitGroup
			codes := make([]int, 2)
			bodies := make([]map[string]any, 2)
			start := make(chan struct{})
			for i := range 2 {
				wg.Go(func() {
					<-start
					codes[i], bodies[i] = refreshAt(t, replicas[i+round%2].URL, clientID, current)
				})
			}
			close(start)
			wg.Wait()
			for i := range 2 {
				if codes[i] != http.StatusOK {
					t.Fatalf("round %d: refresh %d: %d %v", round, i, codes[i], bodies[i])
				}
			}
			if bodies[0]["access_token"] != bodies[1]["access_token"] || bodies[0]["refresh_token"] != bodies[1]["refresh_token"] {
				t.Fatalf("round %d: the two refreshes got different tokens: the grant forked", round)
			}
			current = bodies[0]["refresh_token"].(string)
			if status, _ := mcpStatus(t, replicas[2].URL, bodies[0]["access_token"].(string)); status != http.StatusOK {
				t.Errorf("round %d: the new access token on replica 2: %d", round, status)
			}
		}
		tok.RefreshToken = current
	})

	t.Run("a rotated token reused after the grace window revokes the grant on every replica", func(t *testing.T) {
		first := refresh(t, lb.URL, clientID, tok.RefreshToken)
		second := refresh(t, lb.URL, clientID, first.RefreshToken)
		time.Sleep(2100 * time.Millisecond) // past --refresh-grace 2s
		if code, body := refreshAt(t, replicas[1].URL, clientID, first.RefreshToken); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("reuse after the window: %d %v; want 400 invalid_grant", code, body)
		}
		for i, r := range replicas {
			waitFor(t, func() bool {
				status, _ := mcpStatus(t, r.URL, second.AccessToken)
				return status == http.StatusUnauthorized
			})
			if code, _ := refreshAt(t, r.URL, clientID, second.RefreshToken); code == http.StatusOK {
				t.Errorf("replica %d refreshed a token of the revoked grant", i)
			}
		}
	})

	t.Run("mcpd client revoke on the database is refused by every replica within a second", func(t *testing.T) {
		tok := login(t, lb.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
		for _, r := range replicas {
			for range 2 { // the second use may be answered from the replica's cache
				if status, _ := mcpStatus(t, r.URL, tok.AccessToken); status != http.StatusOK {
					t.Fatalf("before revoke: %d", status)
				}
			}
		}
		out := mustMcpd(t, "", "client", "revoke", clientID, "--database", db)
		revoked := time.Now()
		if !strings.Contains(out, "revoked client "+clientID) {
			t.Errorf("client revoke printed %q", out)
		}
		var wg sync.WaitGroup
		for i, r := range replicas {
			wg.Go(func() {
				for {
					status, _ := mcpStatus(t, r.URL, tok.AccessToken)
					if status == http.StatusUnauthorized {
						t.Logf("replica %d refused the token %v after the revoke", i, time.Since(revoked))
						return
					}
					if time.Since(revoked) > time.Second {
						t.Errorf("replica %d still accepts the token %v after mcpd client revoke", i, time.Since(revoked))
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		wg.Wait()
	})

	t.Run("a DPoP proof one replica accepted is a replay on every other", func(t *testing.T) {
		key := newDPoPKey(t)
		clientID, redirect := publicClient(t, lb.URL, "DPoP Client") // the first was revoked
		out := dpopLogin(t, lb.URL, clientID, redirect, key, "notes:read")
		at, _ := out["access_token"].(string)
		if out["token_type"] != "DPoP" || at == "" {
			t.Fatalf("code exchange with a proof: %v; want a DPoP token", out)
		}
		proof := key.proof(http.MethodPost, lb.URL+"/mcp", at)
		if status, challenges := mcpCall(t, replicas[0].URL, "DPoP "+at, proof); status != http.StatusOK {
			t.Fatalf("first use of the proof on replica 0: %d %v", status, challenges)
		}
		for i, r := range replicas {
			if status, _ := mcpCall(t, r.URL, "DPoP "+at, proof); status != http.StatusUnauthorized {
				t.Errorf("the same proof again on replica %d: %d; want 401", i, status)
			}
		}
		if status, _ := mcpCall(t, replicas[2].URL, "DPoP "+at, key.proof(http.MethodPost, lb.URL+"/mcp", at)); status != http.StatusOK {
			t.Errorf("a fresh proof on replica 2: %d; want 200", status)
		}
	})

	t.Run("admin commands work on the database without an admin socket", func(t *testing.T) {
		out := mustMcpd(t, "", "user", "list", "--json", "--database", db, "--data", t.TempDir())
		var users []map[string]any
		if err := json.Unmarshal([]byte(out), &users); err != nil || len(users) != 2 || users[0]["name"] != "admin" || users[1]["name"] != "alice" {
			t.Errorf("user list --json = %s; want admin and alice", out)
		}
		_, _, err := mcpd(t, "", "backup", t.TempDir()+"/x", "--database", db)
		if err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Errorf("backup on PostgreSQL: got %v; want advice to use pg_dump", err)
		}
	})
}

func TestServeOnPostgresWarnsWithSessions(t *testing.T) {
	db := pgtest.URL(t)
	ts := startServer(t, "--database", db, "--log-level", "warn")
	waitFor(t, func() bool { return strings.Contains(ts.Stderr.String(), "--mcp-stateless true") })
	ts.Stop(t)
	quiet := startServer(t, "--database", db, "--mcp-stateless", "true", "--log-level", "warn")
	if resp, err := http.Get(quiet.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	if strings.Contains(quiet.Stderr.String(), "mcp-stateless") {
		t.Errorf("a stateless replica warned about sessions:\n%s", quiet.Stderr.String())
	}
	if strings.Contains(quiet.Stderr.String()+ts.Stderr.String(), "@127.0.0.1") {
		t.Errorf("the log shows the database URL with its credentials")
	}
}

func TestMigrateToPostgres(t *testing.T) {
	addr := freeAddr(t)
	data := t.TempDir() + "/data"
	old := startServer(t, "--listen", addr, "--data", data)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", data)
	clientID, redirect := publicClient(t, old.URL, "Migrated Client")
	tok := login(t, old.URL, clientID, redirect, "alice", "alice-pw", "notes:read", "notes:write")
	cs := connectMCP(t, old.URL, tok.AccessToken)
	saved := callTool(t, cs, "note_save", map[string]any{"title": "before the move", "body": "kept"})
	old.Stop(t)

	db := pgtest.URL(t)
	out := mustMcpd(t, "", "migrate-to-postgres", "--database", db, "--data", data)
	if !strings.Contains(out, "2 users, 1 clients") {
		t.Errorf("migrate-to-postgres printed %q", out)
	}
	if strings.Contains(out, "@127.0.0.1") {
		t.Errorf("migrate-to-postgres printed the database URL with its credentials: %q", out)
	}

	// The same issuer, now on PostgreSQL, with a fresh data directory.
	moved := startServer(t, "--listen", addr, "--data", t.TempDir()+"/empty", "--database", db, "--mcp-stateless", "true")
	cs = connectMCP(t, moved.URL, tok.AccessToken)
	if got := whoami(t, cs); got["user"] != "alice" {
		t.Errorf("whoami with the old access token = %v; want alice", got)
	}
	note := callTool(t, cs, "note_get", map[string]any{"id": saved["id"]})
	if note["title"] != "before the move" {
		t.Errorf("note_get after the move = %v", note)
	}
	next := refresh(t, moved.URL, clientID, tok.RefreshToken)
	if next.AccessToken == "" {
		t.Errorf("refresh after the move gave no access token")
	}
	if again := login(t, moved.URL, clientID, redirect, "alice", "alice-pw", "notes:read"); again.AccessToken == "" {
		t.Errorf("alice cannot log in after the move")
	}

	_, errOut, err := mcpd(t, "", "migrate-to-postgres", "--database", db, "--data", data)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second migration into the same database: got %v (%s); want a refusal", err, errOut)
	}
}

func TestDatabaseURLValidation(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--database", "mysql://u:p@h/db", "--listen", "127.0.0.1:0", "--data", t.TempDir()},
		{"user", "list", "--database", "sqlite:///tmp/x"},
		{"migrate-to-postgres", "--data", t.TempDir()},
	} {
		_, _, err := mcpd(t, "", args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("mcpd %s: got %v; want a usage error", strings.Join(args, " "), err)
		}
	}
}

// callTool calls an MCP tool and returns its structured result.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) map[string]any {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("%s: %v %+v", name, err, res)
	}
	m, _ := res.StructuredContent.(map[string]any)
	return m
}

// TestReplicasStartingAtOnce starts three replicas on one empty database
// at the same moment: they migrate it once, agree on one token key, and
// create the first user once; the ones that lose that race serve all the
// same, and every one of them accepts the others' tokens.
func TestReplicasStartingAtOnce(t *testing.T) {
	db := pgtest.URL(t)
	l, issuer := listenerAndURL(t)
	const n = 3
	type started struct {
		url    string
		stderr *syncBuffer
		err    error
	}
	results := make(chan started, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := &syncBuffer{}
		done := make(chan error, 1)
		env := cliEnv{ctx: ctx, stdin: strings.NewReader(""), stdout: io.Discard, stderr: stderr,
			getenv: testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw"})}
		go func() {
			done <- env.serve([]string{"--listen", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), fmt.Sprint(i)),
				"--database", db, "--issuer", issuer, "--mcp-stateless", "true", "--log-format", "json", "--log-level", "info"})
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("replica %d: serve: %v\n%s", i, err, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Errorf("replica %d did not stop", i)
			}
		})
		go func() {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
					results <- started{url: "http://" + m[1], stderr: stderr}
					return
				}
			}
			results <- started{stderr: stderr, err: errors.New("did not start")}
		}()
	}
	var replicas []*testServer
	var logs []*syncBuffer
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatalf("a replica %v:\n%s", r.err, r.stderr.String())
		}
		replicas = append(replicas, &testServer{URL: r.url, Stderr: r.stderr})
		logs = append(logs, r.stderr)
	}
	lb := newBalancerOn(t, l, replicas)
	// The first user exists once, whoever created it; admin-pw is its
	// password on every replica.
	waitFor(t, func() bool {
		out, _, err := mcpd(t, "", "user", "list", "--json", "--database", db)
		return err == nil && strings.Count(out, `"name": "admin"`) == 1
	})
	clientID, redirect := publicClient(t, issuer, "At Once")
	tok := login(t, lb.URL, clientID, redirect, "admin", "admin-pw", "notes:read")
	for i, r := range replicas {
		if status, _ := mcpStatus(t, r.URL, tok.AccessToken); status != http.StatusOK {
			t.Errorf("replica %d refuses a token replica 0 issued: %d", i, status)
		}
	}
	// A replica that planned the user too (all of them, when they start
	// within the ~0.1 s argon2id takes) logs that another created it.
	created, lost := 0, 0
	for _, l := range logs {
		created += strings.Count(l.String(), "created the first user")
		lost += strings.Count(l.String(), "another replica created it")
	}
	if created != 1 {
		t.Errorf("%d replicas say they created the first user; want 1", created)
	}
	t.Logf("%d replicas found the first user created by another", lost)
}

// TestAdminCommandsOnPostgres runs every admin command with --database and
// nothing else: no server, no data directory, no admin socket.
func TestAdminCommandsOnPostgres(t *testing.T) {
	db := pgtest.URL(t)
	ts := startServer(t, "--database", db, "--mcp-stateless", "true")
	clientID, redirect := publicClient(t, ts.URL, "Admin Client")
	ts.Stop(t)

	cd := t.TempDir() // a working directory without any mcpd data
	run := func(stdin string, args ...string) string {
		t.Helper()
		return mustMcpd(t, stdin, append(args, "--database", db, "--data", cd+"/nothing")...)
	}
	if out := run("alice-pw\n", "user", "add", "alice", "--password-stdin"); !strings.Contains(out, "added user alice") {
		t.Errorf("user add: %q", out)
	}
	if out := run("alice-pw2\n", "user", "passwd", "alice", "--password-stdin"); !strings.Contains(out, "changed the password") {
		t.Errorf("user passwd: %q", out)
	}
	if out := run("", "user", "list"); !strings.Contains(out, "admin") || !strings.Contains(out, "alice") {
		t.Errorf("user list: %q", out)
	}
	if out := run("", "user", "unlink", "alice", "corp"); out != "unlinked 0 identities of alice at corp\n" {
		t.Errorf("user unlink: %q", out)
	}

	// A grant with a remembered consent, made on a server, seen offline.
	ts = startServer(t, "--database", db, "--mcp-stateless", "true")
	b := newBrowser(t)
	authURL := ts.URL + "/authorize?response_type=code&client_id=" + clientID + "&redirect_uri=" + redirect +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=notes:read"
	if loc := b.authorize(authURL, "alice", "alice-pw2", "allow", nil, true); loc.Query().Get("code") == "" {
		t.Fatalf("no code: %s", loc)
	}
	ts.Stop(t)

	var clients []map[string]any
	if err := json.Unmarshal([]byte(run("", "client", "list", "--json")), &clients); err != nil || len(clients) != 1 || clients[0]["id"] != clientID {
		t.Errorf("client list --json: %v %v", clients, err)
	}
	if out := run("", "client", "show", clientID); !strings.Contains(out, "Admin Client") {
		t.Errorf("client show: %q", out)
	}
	var consents []map[string]any
	if err := json.Unmarshal([]byte(run("", "consent", "list", "--json", "--user", "alice")), &consents); err != nil || len(consents) != 1 || consents[0]["client_id"] != clientID {
		t.Errorf("consent list --json --user alice: %v %v", consents, err)
	}
	if out := run("", "consent", "revoke", "alice", clientID); !strings.Contains(out, "forgot the consent") {
		t.Errorf("consent revoke: %q", out)
	}
	if out := run("", "client", "revoke", clientID); !strings.Contains(out, "revoked client") {
		t.Errorf("client revoke: %q", out)
	}
	if out := run("", "user", "remove", "alice"); !strings.Contains(out, "removed user alice") {
		t.Errorf("user remove: %q", out)
	}
	if _, _, err := mcpd(t, "", "client", "show", clientID, "--database", db); !errors.Is(err, errNotFound) {
		t.Errorf("client show of a revoked client: got %v; want not found", err)
	}
	if _, err := os.Stat(cd + "/nothing"); !os.IsNotExist(err) {
		t.Errorf("an admin command on PostgreSQL created the data directory (stat: %v)", err)
	}
}
