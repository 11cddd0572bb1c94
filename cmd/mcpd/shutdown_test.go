package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/mcpd once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

func mcpdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpd-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "mcpd")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, ".")
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

// straddler is a request whose headers the server has read, and whose
// handler is running, when SIGTERM arrives: it sends "Expect:
// 100-continue", waits for the server's "100 Continue" (which net/http
// sends only once the handler reads the body), and sends its body after
// the signal.
type straddler struct {
	name string
	conn net.Conn
	br   *bufio.Reader
	body string
}

func startStraddler(t *testing.T, addr, name, path string, header map[string]string, body string) *straddler {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n", path, addr, len(body))
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	io.WriteString(c, b.String())
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("%s: wanted 100 Continue, got %q, %v", name, line, err)
	}
	br.ReadString('\n') // the blank line after the interim response
	return &straddler{name: name, conn: c, br: br, body: body}
}

// finish sends the body and returns the final response.
func (s *straddler) finish(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	io.WriteString(s.conn, s.body)
	s.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		t.Errorf("%s: accepted before SIGTERM, then no answer: %v", s.name, err)
		return nil, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s: answer cut off: %v", s.name, err)
	}
	return resp, b
}

// loadResult counts what a load worker saw.
type loadResult struct {
	ok, failed, refused atomic.Int64
	failures            sync.Map
}

func (r *loadResult) fail(why string) {
	r.failed.Add(1)
	r.failures.Store(why, true)
}

// do sends one request and classifies the outcome by whether the server
// accepted it. Every request carries "Expect: 100-continue" and the
// transport sends its body only after the server's "100 Continue", which
// net/http sends once the handler reads the body: a request answered 100
// was accepted, and anything but a complete 2xx answer to it (an error, a
// 5xx, an answer cut off) is a failure. A request that got no 100 and no
// answer was never accepted and is "refused", whatever the error says: a
// dial to the closed listener, or a request written on a kept-alive
// connection just as Shutdown closed it idle, before the server read a
// byte of it (the client's "http: server closed idle connection", EOF or
// a reset). Shutdown never closes a connection whose request it has read.
func (r *loadResult) do(hc *http.Client, req *http.Request, check func([]byte) string) {
	var accepted atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got100Continue: func() { accepted.Store(true) },
	}))
	req.Header.Set("Expect", "100-continue")
	resp, err := hc.Do(req)
	if err != nil {
		if !accepted.Load() {
			r.refused.Add(1)
			time.Sleep(5 * time.Millisecond)
			return
		}
		r.fail(req.URL.Path + ": accepted, then: " + err.Error())
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		r.fail(req.URL.Path + ": answer cut off: " + err.Error())
	case resp.StatusCode >= 300:
		r.fail(fmt.Sprintf("%s: %s %.100s", req.URL.Path, resp.Status, body))
	default:
		if why := check(body); why != "" {
			r.fail(req.URL.Path + ": " + why)
			return
		}
		r.ok.Add(1)
	}
}

// loadClient is a load worker's client: kept-alive connections, and a
// request body sent only after the server's 100 Continue (do).
func loadClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 20 * time.Second}}
}

func TestSIGTERMDuringLoad(t *testing.T) {
	bin := mcpdBinary(t)
	data := t.TempDir()
	listen := freeAddr(t)
	issuer := "http://" + listen
	var stderr syncBuffer
	cmd := exec.Command(bin, "serve", "--listen", listen, "--data", data, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=admin-pw")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "is listening on") })

	reg := registerClient(t, issuer, map[string]any{
		"client_name": "load cc", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	})
	ccID, ccSecret := reg["client_id"].(string), reg["client_secret"].(string)
	token, tokenClient := ccTokenAndClient(t, issuer)
	clientID, redirect := publicClient(t, issuer, "load client")
	grant := login(t, issuer, clientID, redirect, "admin", "admin-pw", "notes:read")

	// Requests in flight at the signal, by construction.
	sid := rawMCPSession(t, issuer, token)
	mcpHeader := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": "Bearer " + token, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
	straddlers := []*straddler{
		startStraddler(t, listen, "client_credentials", "/token", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": basicAuth(ccID, ccSecret)}, "grant_type=client_credentials&scope=notes%3Aread"),
		startStraddler(t, listen, "note_save", "/mcp", mcpHeader, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"saved across SIGTERM","body":"b"}}}`),
		startStraddler(t, listen, "register", "/register", map[string]string{"Content-Type": "application/json"}, `{"client_name":"late","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`),
	}

	// And a mixed load over kept-alive connections.
	var res loadResult
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(next func() *http.Request, check func([]byte) string) {
		wg.Go(func() {
			hc := loadClient()
			defer hc.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res.do(hc, next(), check)
			}
		})
	}
	anyBody := func([]byte) string { return "" }
	mcpCall := func(body string, sid string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, issuer+"/mcp", strings.NewReader(body))
		for k, v := range mcpHeader {
			req.Header.Set(k, v)
		}
		if sid == "" {
			req.Header.Del("Mcp-Session-Id")
			req.Header.Del("MCP-Protocol-Version")
		}
		return req
	}
	var rpcID atomic.Int64
	rpcID.Store(100)
	for range 3 {
		worker(func() *http.Request {
			return mcpCall(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`, rpcID.Add(1)), sid)
		}, func(b []byte) string {
			if !bytes.Contains(b, []byte(`"structuredContent":{"id"`)) {
				return fmt.Sprintf("note_save answered %.200q", b)
			}
			return ""
		})
	}
	worker(func() *http.Request {
		return mcpCall(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`, "")
	}, anyBody)
	for range 2 {
		worker(func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=notes%3Aread"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(ccID, ccSecret)
			return req
		}, anyBody)
	}
	var rt atomic.Value
	rt.Store(grant.RefreshToken)
	worker(func() *http.Request {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.Load().(string)}, "client_id": {clientID}}
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}, func(b []byte) string {
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(b, &tok) != nil || tok.RefreshToken == "" {
			return fmt.Sprintf("refresh answered %.200q", b)
		}
		rt.Store(tok.RefreshToken)
		return ""
	})

	waitFor(t, func() bool { return res.ok.Load() >= 50 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes when shutdown starts; only then do the requests
	// accepted before the signal send their bodies.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for _, s := range straddlers {
		resp, body := s.finish(t)
		if resp != nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
			t.Errorf("%s, accepted before SIGTERM: %s %.200s", s.name, resp.Status, body)
		}
		if s.name == "note_save" && !bytes.Contains(body, []byte(`"structuredContent":{"id"`)) {
			t.Errorf("note_save accepted before SIGTERM answered %.200q", body)
		}
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("mcpd exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mcpd did not exit after SIGTERM")
	}
	close(stop)
	wg.Wait()
	if n := res.failed.Load(); n > 0 {
		var reasons []string
		res.failures.Range(func(k, _ any) bool { reasons = append(reasons, k.(string)); return true })
		t.Errorf("%d requests failed mid-flight (%d ok, %d refused after close): %v", n, res.ok.Load(), res.refused.Load(), reasons)
	}
	if _, err := os.Stat(filepath.Join(data, adminSocketName)); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind (stat: %v)", err)
	}
	checkBolt(t, filepath.Join(data, "mcpd.db"))
	st := mustOpenStore(t, data)
	defer st.Close()
	notes, err := st.ListNotes(t.Context(), "client:"+tokenClient)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range notes {
		found = found || n.Title == "saved across SIGTERM"
	}
	if !found {
		t.Errorf("the note saved by a request accepted before SIGTERM is not in the database (%d notes)", len(notes))
	}
	t.Logf("%d requests ok, %d refused after the listener closed", res.ok.Load(), res.refused.Load())
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}
