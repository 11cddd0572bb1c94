package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
)

// initializeBody is a 2025-era initialize request.
const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// postMCP posts body to issuer's /mcp as a client does (JSON, event
// streams accepted) with the headers h (a Host entry names the request's
// host), reads the answer to its end and closes it.
func postMCP(t *testing.T, issuer, body string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, issuer+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		req.Header = h.Clone()
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
		req.Header.Del("Host")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a whole mcpd started through run on port 0.
type testServer struct {
	URL    string // the issuer, e.g. http://127.0.0.1:41234
	Data   string
	Stderr *syncBuffer
	stop   context.CancelFunc
	done   chan error
}

var listeningRE = regexp.MustCompile(`is listening on (\S+)`)

// startServer runs `mcpd serve` in-process on a random port with a fresh
// data directory (unless args name one) and the admin password "admin-pw".
// It stops the server at the end of the test and fails the test if serve
// returned an error.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerEnv is startServer with mod changing the program's
// environment (its variables, its clock) before serve starts.
func startServerEnv(t *testing.T, mod func(*cliEnv), args ...string) *testServer {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	for i, a := range args {
		if a == "--data" && i+1 < len(args) {
			data = args[i+1]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Data: data, Stderr: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	full := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--log-format", "json", "--log-level", "warn"}, args...)
	env := cliEnv{ctx: ctx, stdin: strings.NewReader(""), stdout: io.Discard, stderr: ts.Stderr, getenv: testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw"})}
	if mod != nil {
		mod(&env)
	}
	go func() { ts.done <- env.serve(full[1:]) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(ts.Stderr.String()); m != nil {
			ts.URL = "http://" + m[1]
			break
		}
		select {
		case err := <-ts.done:
			t.Fatalf("serve ended early: %v\n%s", err, ts.Stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if ts.URL == "" {
		t.Fatalf("server did not start:\n%s", ts.Stderr.String())
	}
	t.Cleanup(func() { ts.Stop(t) })
	return ts
}

// Stop shuts the server down and waits for it; a second call does nothing.
func (ts *testServer) Stop(t *testing.T) {
	t.Helper()
	if ts.stop == nil {
		return
	}
	ts.stop()
	ts.stop = nil
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("serve: %v\n%s", err, ts.Stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("serve did not stop")
	}
	if _, err := os.Stat(filepath.Join(ts.Data, adminSocketName)); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind after shutdown (stat: %v)", err)
	}
}

func testEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// mcpd runs one CLI command in-process and returns its stdout, stderr and
// error.
func mcpd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

// mustMcpd is mcpd that fails the test on an error.
func mustMcpd(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, err := mcpd(t, stdin, args...)
	if err != nil {
		t.Fatalf("mcpd %s: %v\nstderr: %s", strings.Join(args, " "), err, errs)
	}
	return out
}

// noRedirect is an http.Client option that returns redirects unfollowed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustOpenStore opens the data directory of a stopped server.
func mustOpenStore(t *testing.T, data string) *store.Store {
	t.Helper()
	st, err := store.Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
