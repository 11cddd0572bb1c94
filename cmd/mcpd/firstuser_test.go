package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
)

// heldServer is a serve on a fresh data directory whose first user is not
// created until the test calls release: the window in which a first start
// already serves but the user does not exist yet, held open for as long
// as the test needs.
type heldServer struct {
	srv     *server
	Issuer  string
	Data    string
	Logs    *syncBuffer // log lines (JSON, debug level) and the banner
	release func()
	stop    context.CancelFunc
	wait    func() error // waits for run and returns what it returned
}

// startHeldServer runs serve in-process with MCPD_INITIAL_PASSWORD=admin-pw.
// createErr, when not nil, is what the creation of the first user returns
// once released, instead of creating it.
func startHeldServer(t *testing.T, createErr error) *heldServer {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	getenv := testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw"})
	cfg, err := loadServeConfig(newFlagSet("serve", io.Discard, serveUsage), []string{"--listen", "127.0.0.1:0", "--data", data}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := newServer(ctx, cfg, newLogger(logs, "json", "debug"), getenv)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	create := srv.firstUser.create
	if create == nil {
		cancel()
		srv.closeAll()
		t.Fatal("a fresh data directory has nothing to create")
	}
	released := make(chan struct{})
	srv.firstUser.create = func(ctx context.Context) error {
		<-released
		if createErr != nil {
			return createErr
		}
		return create(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx, logs) }()
	hs := &heldServer{
		srv: srv, Issuer: cfg.Issuer, Data: data, Logs: logs, stop: cancel,
		release: sync.OnceFunc(func() { close(released) }),
		wait:    sync.OnceValue(func() error { return <-done }),
	}
	t.Cleanup(func() {
		hs.release()
		hs.stop()
		hs.wait()
	})
	return hs
}

// waitingFor reports whether something logged that it waits for the first
// user, on behalf of what ("login", "admin /admin/user-list").
func (hs *heldServer) waitingFor(what string) bool {
	return strings.Contains(hs.Logs.String(), `"msg":"waiting for the first user to be created","for":"`+what+`"`)
}

// untilWaitingOr blocks until hs logs that what waits for the first user,
// or until ended is closed (what did not wait).
func (hs *heldServer) untilWaitingOr(t *testing.T, what string, ended <-chan struct{}) {
	t.Helper()
	waitFor(t, func() bool {
		select {
		case <-ended:
			return true
		default:
			return hs.waitingFor(what)
		}
	})
}

// adminLogsInAfterRestart runs a plain serve on data, whose last server has
// stopped, and checks that admin logs in with admin-pw.
func adminLogsInAfterRestart(t *testing.T, data string) {
	t.Helper()
	ts := startServer(t, "--data", data)
	clientID, redirect := publicClient(t, ts.URL, "after a restart")
	login(t, ts.URL, clientID, redirect, "admin", "admin-pw")
}

func TestFirstUserCreatedWhileServing(t *testing.T) {
	t.Run("healthz answers before the first user exists", func(t *testing.T) {
		hs := startHeldServer(t, nil)
		resp, err := http.Get(hs.Issuer + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz: %s; want 200 OK", resp.Status)
		}
	})

	t.Run("a login that arrives while the first user is created succeeds once it exists", func(t *testing.T) {
		hs := startHeldServer(t, nil)
		clientID, redirect := publicClient(t, hs.Issuer, "early login")
		cfg := &oauth2.Config{
			ClientID:    clientID,
			Endpoint:    oauth2.Endpoint{AuthURL: hs.Issuer + "/authorize", TokenURL: hs.Issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
			RedirectURL: strings.Replace(redirect, "127.0.0.1", "127.0.0.1:49152", 1),
			Scopes:      []string{"notes:read"},
		}
		verifier := oauth2.GenerateVerifier()
		authURL := cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", hs.Issuer+"/mcp"))
		b := newBrowser(t)
		resp, body := b.get(authURL)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /authorize: %s\n%s", resp.Status, body)
		}
		f := parseForm(t, resp.Request.URL.String(), body)
		if _, ok := f.Fields["password"]; !ok {
			t.Fatalf("GET /authorize did not show the login form:\n%s", body)
		}
		f.Fields.Set("username", "admin")
		f.Fields.Set("password", "admin-pw")

		type result struct {
			status   int
			location string
			err      error
		}
		got := make(chan result, 1)
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			resp, err := b.hc.PostForm(f.Action, f.Fields)
			if err != nil {
				got <- result{err: err}
				return
			}
			resp.Body.Close()
			got <- result{status: resp.StatusCode, location: resp.Header.Get("Location")}
		}()
		hs.untilWaitingOr(t, "login", ended)
		hs.release()
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, hs.Issuer+"/authorize?") {
			t.Fatalf("login POST: status %d, Location %q; want 303 to %s/authorize?…", r.status, r.location, hs.Issuer)
		}
		// The session the login started carries on to consent and a code.
		loc := b.authorize(r.location, "", "", "allow", nil, false)
		code := loc.Query().Get("code")
		if code == "" {
			t.Fatalf("authorization ended in %s", loc)
		}
		tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", hs.Issuer+"/mcp"))
		if err != nil || tok.AccessToken == "" {
			t.Fatalf("exchange: %v", err)
		}
	})

	t.Run("an admin command that arrives while the first user is created sees it", func(t *testing.T) {
		hs := startHeldServer(t, nil)
		type result struct {
			out, errs string
			err       error
		}
		got := make(chan result, 1)
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			var r result
			r.out, r.errs, r.err = mcpdNoT("", "user", "list", "--data", hs.Data)
			got <- r
		}()
		hs.untilWaitingOr(t, "admin /admin/user-list", ended)
		hs.release()
		r := <-got
		if r.err != nil {
			t.Fatalf("user list: %v\n%s", r.err, r.errs)
		}
		if !strings.Contains(r.out, "admin") {
			t.Errorf("user list printed %q; want the user admin", r.out)
		}
	})

	t.Run("a shutdown while the first user is created waits for it", func(t *testing.T) {
		hs := startHeldServer(t, nil)
		hs.stop()
		waitFor(t, func() bool { return strings.Contains(hs.Logs.String(), `"msg":"shutting down"`) })
		hs.release()
		if err := hs.wait(); err != nil {
			t.Fatalf("serve: %v", err)
		}
		st := mustOpenStore(t, hs.Data)
		defer st.Close()
		if err := st.Authenticate(context.Background(), "admin", "admin-pw"); err != nil {
			t.Errorf("admin after a shutdown during its creation: %v", err)
		}
	})

	t.Run("serve ends with an error when the first user cannot be created, and the next start creates it", func(t *testing.T) {
		failure := errors.New("disk full")
		hs := startHeldServer(t, failure)
		hs.release()
		err := hs.wait()
		if !errors.Is(err, failure) || !strings.Contains(err.Error(), "create the first user") {
			t.Errorf("serve returned %v; want create the first user: %v", err, failure)
		}
		adminLogsInAfterRestart(t, hs.Data)
	})

	t.Run("a start that ends before the first user is written leaves it to the next start", func(t *testing.T) {
		// newServer commits everything a first start writes before the
		// first user (database, buckets, server key); closing without run
		// is a crash before the user's transaction.
		data := filepath.Join(t.TempDir(), "data")
		getenv := testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw"})
		cfg, err := loadServeConfig(newFlagSet("serve", io.Discard, serveUsage), []string{"--listen", "127.0.0.1:0", "--data", data}, getenv)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := newServer(context.Background(), cfg, newLogger(io.Discard, "json", "error"), getenv)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.closeAll(); err != nil {
			t.Fatal(err)
		}
		adminLogsInAfterRestart(t, data)
	})
}

// mcpdNoT is mcpd for a goroutine other than the test's: it reports
// instead of failing the test.
func mcpdNoT(stdin string, args ...string) (string, string, error) {
	var out, errb strings.Builder
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}
