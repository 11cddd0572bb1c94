package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ccToken registers a client_credentials client and returns a token of it
// with notes:read and notes:write.
func ccToken(t *testing.T, issuer string) string {
	t.Helper()
	token, _ := ccTokenAndClient(t, issuer)
	return token
}

// ccTokenAndClient is ccToken that also returns the client's id.
func ccTokenAndClient(t *testing.T, issuer string) (string, string) {
	t.Helper()
	reg := registerClient(t, issuer, map[string]any{
		"client_name": "limits", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	})
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=notes%3Aread+notes%3Awrite"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(reg["client_id"].(string), reg["client_secret"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := decodeJSON(resp, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("client_credentials token: %s %v", resp.Status, err)
	}
	return tok.AccessToken, reg["client_id"].(string)
}

func decodeJSON(resp *http.Response, out any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %.200s", resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// hostOf is the host:port of a URL.
func hostOf(t *testing.T, issuer string) string {
	t.Helper()
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// closedWithin reads c until it is closed by the server and reports what
// it read, failing the test when that takes longer than limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (read so far: %q)", limit, b)
	}
	return string(b)
}

func TestSlowClientsAreCutOff(t *testing.T) {
	ts := startServer(t, "--read-header-timeout", "1s", "--read-body-timeout", "1s")
	addr := hostOf(t, ts.URL)

	t.Run("headers sent slower than --read-header-timeout are cut off", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the blank line
		// 6 s: the timeout was a fixed 10 s before it was a setting.
		if got := closedWithin(t, c, 6*time.Second); strings.Contains(got, "200 OK") {
			t.Errorf("answered %q to headers that never ended", got)
		}
	})
	for _, path := range []string{"/token", "/register", "/mcp"} {
		t.Run("a body sent slower than --read-body-timeout is cut off: "+path, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: Bearer x\r\nContent-Length: 1000\r\n\r\ngrant_type=", path, addr)
			got := closedWithin(t, c, 15*time.Second)
			if strings.Contains(got, " 200 ") || strings.Contains(got, " 201 ") {
				t.Errorf("answered %q to a body that never arrived", got)
			}
		})
	}
}

func TestEventStreamOutlivesTimeouts(t *testing.T) {
	ts := startServer(t, "--read-body-timeout", "500ms", "--write-timeout", "500ms", "--read-header-timeout", "500ms")
	token := ccToken(t, ts.URL)
	sid := rawMCPSession(t, ts.URL, token)

	c, err := net.Dial("tcp", hostOf(t, ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\nMcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n", hostOf(t, ts.URL), token, sid)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stream status line %q, %v", status, err)
	}
	// Three times every timeout: a stream cut by any of them would have
	// ended (net/http writes the chunked terminator), and the read below
	// would see it instead of timing out.
	time.Sleep(1500 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		line, err := br.ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break // still open, nothing more to read: as it should be
		}
		if err != nil {
			t.Fatalf("the event stream ended after the timeouts passed: %v", err)
		}
		if line == "0\r\n" {
			t.Fatal("the event stream was ended by the server")
		}
	}
	// And the session still works.
	if st := mcpPing(t, ts.URL, token, sid); st != http.StatusOK {
		t.Errorf("ping on the session: status %d", st)
	}
}

// rawMCPSession initializes an MCP session with raw requests.
func rawMCPSession(t *testing.T, issuer, token string) string {
	t.Helper()
	resp := postMCP(t, issuer, initializeBody, http.Header{"Authorization": {"Bearer " + token}})
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %s, session %q", resp.Status, sid)
	}
	if r := postMCP(t, issuer, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sessionHeader(token, sid)); r.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %s", r.Status)
	}
	return sid
}

// sessionHeader is what a 2025-era request on session sid carries.
func sessionHeader(token, sid string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Mcp-Session-Id": {sid}, "Mcp-Protocol-Version": {"2025-06-18"}}
}

func mcpPing(t *testing.T, issuer, token, sid string) int {
	t.Helper()
	return postMCP(t, issuer, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, sessionHeader(token, sid)).StatusCode
}

func TestWriteTimeoutEndsAResponseNobodyReads(t *testing.T) {
	var writeErr atomic.Value
	done := make(chan struct{})
	h := requestLimits{WriteTimeout: 300 * time.Millisecond}.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 64<<10)
		rc := http.NewResponseController(w)
		for range 100_000 { // 6 GB: far more than any socket buffer holds
			if _, err := w.Write(chunk); err != nil {
				writeErr.Store(err)
				return
			}
			if err := rc.Flush(); err != nil {
				writeErr.Store(err)
				return
			}
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
	err, _ = writeErr.Load().(error)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("write ended with %v; want a timeout", err)
	}
}

func TestWriteTimeoutIsPerWrite(t *testing.T) {
	// The timeout bounds each write, not the response: a handler that
	// thinks for longer than it before answering, and an event stream
	// that writes now and then for longer than it, both get through.
	handlers := map[string]http.HandlerFunc{
		"a slow answer": func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(600 * time.Millisecond)
			io.WriteString(w, "late but whole")
		},
		"an event stream": func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for i := range 5 {
				if i > 0 {
					time.Sleep(250 * time.Millisecond)
				}
				io.WriteString(w, "event ")
				if err := rc.Flush(); err != nil {
					return
				}
			}
			io.WriteString(w, "end")
		},
	}
	want := map[string]string{"a slow answer": "late but whole", "an event stream": "event event event event event end"}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(requestLimits{WriteTimeout: 200 * time.Millisecond}.middleware(h))
			defer srv.Close()
			hc := srv.Client()
			for range 2 { // the second request reuses the connection and its old deadline
				resp, err := hc.Get(srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want[name] {
					t.Fatalf("answer %q, %v; want %q", b, err, want[name])
				}
			}
		})
	}
}

// holdConn opens a connection that the server has accepted (it sent the
// start of a request line, so the kernel hands it over at once).
func holdConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "G")
	return c
}

// healthzOn makes one GET /healthz on a fresh connection and returns the
// status.
func healthzOn(t *testing.T, addr string) int {
	t.Helper()
	st, err := healthzStatus(addr)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	return st
}

// healthzStatus is healthzOn for goroutines other than the test's.
func healthzStatus(addr string) (int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestConnectionCaps(t *testing.T) {
	t.Run("connections from one address over --max-connections-per-address get 503", func(t *testing.T) {
		ts := startServer(t, "--max-connections-per-address", "3")
		addr := hostOf(t, ts.URL)
		held := []net.Conn{holdConn(t, addr), holdConn(t, addr), holdConn(t, addr)}
		waitFor(t, func() bool { return healthzOn(t, addr) == http.StatusServiceUnavailable })
		held[0].Close()
		waitFor(t, func() bool { return healthzOn(t, addr) == http.StatusOK })
	})
	t.Run("a trusted proxy has no per-address cap", func(t *testing.T) {
		ts := startServer(t, "--max-connections-per-address", "2", "--trusted-proxies", "127.0.0.1/32")
		addr := hostOf(t, ts.URL)
		for range 4 {
			holdConn(t, addr)
		}
		if st := healthzOn(t, addr); st != http.StatusOK {
			t.Errorf("healthz through a trusted proxy holding 4 connections: %d; want 200", st)
		}
	})
	t.Run("at --max-connections a new connection waits until one closes", func(t *testing.T) {
		ts := startServer(t, "--max-connections", "2", "--trusted-proxies", "127.0.0.1/32")
		addr := hostOf(t, ts.URL)
		held := []net.Conn{holdConn(t, addr), holdConn(t, addr)}
		waitFor(t, func() bool {
			// The two held connections are accepted once the kernel has
			// handed them over; until then a third may slip in.
			done := make(chan int, 1)
			go func() { st, _ := healthzStatus(addr); done <- st }()
			select {
			case <-done:
				return false
			case <-time.After(300 * time.Millisecond):
				return true // waiting: the cap is reached
			}
		})
		answered := make(chan int, 1)
		go func() { st, _ := healthzStatus(addr); answered <- st }()
		select {
		case st := <-answered:
			t.Fatalf("a connection over the cap was answered %d while the others stayed open", st)
		case <-time.After(300 * time.Millisecond):
		}
		held[0].Close()
		select {
		case st := <-answered:
			if st != http.StatusOK {
				t.Errorf("healthz once a place was free: %d; want 200", st)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting connection was not served after a place was freed")
		}
		held[1].Close()
	})
}

func TestOversizedBodiesGet413OnEveryPOSTEndpoint(t *testing.T) {
	ts := startServer(t, "--max-request-bytes", "200000")
	token := ccToken(t, ts.URL)
	cases := []struct {
		path string
		cap  int
	}{
		{"/token", 64 << 10},
		{"/revoke", 64 << 10},
		{"/introspect", 64 << 10},
		{"/register", 64 << 10},
		{"/authorize/login", 64 << 10},
		{"/authorize/consent", 64 << 10},
		{"/login/passkey", 64 << 10},
		{"/login/passkey/begin", 64 << 10},
		{"/mcp", 200000},
	}
	for _, c := range cases {
		for _, chunked := range []bool{false, true} {
			name := fmt.Sprintf("%s, %d bytes over the cap of %d", c.path, 1, c.cap)
			if chunked {
				name += ", chunked"
			}
			t.Run(name, func(t *testing.T) {
				var body io.Reader = strings.NewReader(`{"a":"` + strings.Repeat("x", c.cap-7) + `"}`)
				if chunked {
					body = struct{ io.Reader }{body}
				}
				req, _ := http.NewRequest(http.MethodPost, ts.URL+c.path, body)
				req.Header.Set("Content-Type", "application/json")
				if c.path != "/register" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if c.path == "/mcp" {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Accept", "application/json, text/event-stream")
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Errorf("status %d; want 413", resp.StatusCode)
				}
				// The rest of the body is unread: the connection must
				// close, or net/http reads it as the next request.
				if !resp.Close {
					t.Errorf("413 without Connection: close")
				}
			})
		}
	}
	t.Run("a body over --max-request-bytes on a path without a cap of its own", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/healthz", strings.NewReader(strings.Repeat("x", 200001)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d; want 413", resp.StatusCode)
		}
	})
}
