package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/web"
)

// Benchmarks of the hot paths on the real wired server (serve, bbolt with
// durable commits, authz, mcp) over loopback HTTP:
//
//	go test -run '^$' -bench . -benchmem ./cmd/mcpd/
//
// The load generator in bench/loadgen measures the same paths against a
// separate mcpd process; docs/benchmarks.md has the figures.

// benchServer runs `mcpd serve` in-process on a random port for a
// benchmark, with the admin password "admin-pw" and extra args.
func benchServer(b *testing.B, args ...string) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	full := append([]string{"--listen", "127.0.0.1:0", "--data", filepath.Join(b.TempDir(), "data"), "--log-format", "json", "--log-level", "error"}, args...)
	env := cliEnv{ctx: ctx, stdin: strings.NewReader(""), stdout: io.Discard, stderr: stderr, getenv: testEnv(map[string]string{"MCPD_INITIAL_PASSWORD": "admin-pw"})}
	go func() { done <- env.serve(full) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			b.Errorf("serve did not stop")
		}
	})
	defer func() {
		if b.Failed() {
			done <- nil // serve ended early and its result was read
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case err := <-done:
			b.Fatalf("serve ended early: %v\n%s", err, stderr.String())
		default:
		}
	}
	b.Fatalf("server did not start:\n%s", stderr.String())
	return ""
}

// benchPost posts a body and decodes a JSON answer, failing on any status
// but want. It is safe to call from RunParallel goroutines.
func benchPost(b *testing.B, hc *http.Client, u, contentType string, body []byte, basic [2]string, want int, out any) {
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if basic[0] != "" {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Errorf("POST %s: %s: %s", u, resp.Status, raw)
		return
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.Error(err)
		}
	}
}

func benchRegister(b *testing.B, hc *http.Client, issuer string, body map[string]any) (id, secret string) {
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	raw, _ := json.Marshal(body)
	benchPost(b, hc, issuer+"/register", "application/json", raw, [2]string{}, http.StatusCreated, &reg)
	return reg.ClientID, reg.ClientSecret
}

// benchConfidential registers a client_credentials client.
func benchConfidential(b *testing.B, hc *http.Client, issuer string) (id, secret string) {
	return benchRegister(b, hc, issuer, map[string]any{
		"client_name": "bench-cc", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	})
}

type benchTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

var (
	formActionRE = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// benchGrant runs the authorization code flow with PKCE as admin for a
// new public client, through the login and consent pages, and returns the
// client and its tokens.
func benchGrant(b *testing.B, issuer string) (string, benchTokens) {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: noRedirect}
	clientID, _ := benchRegister(b, hc, issuer, map[string]any{
		"client_name": "bench", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://127.0.0.1:49152/callback"
	next := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"notes:read notes:write"}, "state": {"state-0123456789"}, "resource": {issuer + "/mcp"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}.Encode()
	var form url.Values
	for range 8 {
		var resp *http.Response
		var err error
		if form == nil {
			resp, err = hc.Get(next)
		} else {
			resp, err = hc.PostForm(next, form)
		}
		if err != nil {
			b.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc, err := resp.Location(); err == nil {
			if !strings.HasPrefix(loc.String(), issuer+"/") {
				var tok benchTokens
				benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", []byte(url.Values{
					"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
					"client_id": {clientID}, "code_verifier": {verifier}, "resource": {issuer + "/mcp"},
				}.Encode()), [2]string{}, http.StatusOK, &tok)
				if tok.RefreshToken == "" {
					b.Fatalf("authorization ended in %s without tokens", loc)
				}
				return clientID, tok
			}
			next, form = loc.String(), nil
			continue
		}
		m := formActionRE.FindSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil {
			b.Fatalf("authorization page: %s\n%s", resp.Status, page)
		}
		action, _ := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
		form = url.Values{}
		for _, h := range hiddenRE.FindAllSubmatch(page, -1) {
			form.Add(string(h[1]), html.UnescapeString(string(h[2])))
		}
		if bytes.Contains(page, []byte(`name="password"`)) {
			form.Set("username", "admin")
			form.Set("password", "admin-pw")
		} else {
			form.Set("action", "allow")
		}
		next = action.String()
	}
	b.Fatal("authorization did not end in a redirect to the client")
	return "", benchTokens{}
}

// BenchmarkMCPWhoami is tools/call whoami through the whole server: the
// bearer token is looked up in bbolt and checked on every call. The
// parallel variant runs one MCP session per goroutine. The go-sdk client
// is held to 2025-11-25 (initialize, a session) but in the 2026-07-28
// variant, whose requests are stateless.
func BenchmarkMCPWhoami(b *testing.B) {
	const legacy = "2025-11-25"
	for _, mode := range []struct {
		name    string
		args    []string
		version string
	}{
		{"sse", nil, legacy},
		{"json", []string{"--mcp-json-response", "true"}, legacy},
		{"stateless-json", []string{"--mcp-stateless", "true", "--mcp-json-response", "true"}, legacy},
		{"2026-07-28", nil, "2026-07-28"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			issuer := benchServer(b, mode.args...)
			hc := &http.Client{}
			id, secret := benchConfidential(b, hc, issuer)
			var tok benchTokens
			benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials&scope=notes%3Aread"), [2]string{id, secret}, http.StatusOK, &tok)
			connect := func() *mcp.ClientSession {
				client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
				cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
					Endpoint: issuer + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{token: tok.AccessToken}},
					DisableStandaloneSSE: true,
				}, &mcp.ClientSessionOptions{ProtocolVersion: mode.version})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cs.Close() })
				return cs
			}
			params := &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}
			b.Run("serial", func(b *testing.B) {
				cs := connect()
				for b.Loop() {
					if res, err := cs.CallTool(context.Background(), params); err != nil || res.IsError {
						b.Fatalf("whoami: %v %+v", err, res)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				sessions := make(chan *mcp.ClientSession, 16)
				for range cap(sessions) {
					sessions <- connect()
				}
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					cs := <-sessions
					defer func() { sessions <- cs }()
					for pb.Next() {
						if res, err := cs.CallTool(context.Background(), params); err != nil || res.IsError {
							b.Errorf("whoami: %v %+v", err, res)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkRefreshRotation is one refresh_token grant after another on
// one grant: each rotates the refresh token in a durable transaction and
// stores the grace-window successor.
func BenchmarkRefreshRotation(b *testing.B) {
	benchRefreshLoop(b, benchServer(b))
}

// benchRefreshLoop makes one grant at issuer and refreshes it once per
// iteration, always with the refresh token the last refresh handed out.
func benchRefreshLoop(b *testing.B, issuer string) {
	clientID, tok := benchGrant(b, issuer)
	hc := &http.Client{}
	rt := tok.RefreshToken
	for b.Loop() {
		var next benchTokens
		benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded",
			[]byte(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}}.Encode()),
			[2]string{}, http.StatusOK, &next)
		if next.RefreshToken == "" {
			b.Fatal("refresh answered without a refresh token")
		}
		rt = next.RefreshToken
	}
}

// BenchmarkClientCredentials is the client_credentials grant from 16
// goroutines per core: client authentication (keyed hash of the secret)
// and a durable access-token write.
func BenchmarkClientCredentials(b *testing.B) {
	issuer := benchServer(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	id, secret := benchConfidential(b, hc, issuer)
	body := []byte("grant_type=client_credentials&scope=notes%3Aread")
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", body, [2]string{id, secret}, http.StatusOK, nil)
		}
	})
}

// BenchmarkIntrospect is /introspect of a live access token, authenticated
// as a confidential client, from 16 goroutines per core.
func BenchmarkIntrospect(b *testing.B) {
	issuer := benchServer(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	id, secret := benchConfidential(b, hc, issuer)
	var tok benchTokens
	benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials&scope=notes%3Aread"), [2]string{id, secret}, http.StatusOK, &tok)
	body := []byte(url.Values{"token": {tok.AccessToken}}.Encode())
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var out struct {
				Active bool `json:"active"`
			}
			benchPost(b, hc, issuer+"/introspect", "application/x-www-form-urlencoded", body, [2]string{id, secret}, http.StatusOK, &out)
			if !out.Active {
				b.Error("token reported inactive")
				return
			}
		}
	})
}

// BenchmarkRegister is dynamic client registration (RFC 7591) from 16
// goroutines per core, with the rate limits (per address and in total)
// and the client cap raised.
func BenchmarkRegister(b *testing.B) {
	issuer := benchServer(b, "--registrations-per-minute", "100000000", "--registrations-per-minute-total", "0", "--max-clients", "100000000")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body, _ := json.Marshal(map[string]any{
				"client_name": fmt.Sprintf("bench-%d", seq.Add(1)), "redirect_uris": []string{"http://127.0.0.1/callback"},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none",
			})
			benchPost(b, hc, issuer+"/register", "application/json", body, [2]string{}, http.StatusCreated, nil)
		}
	})
}

func TestRuntimeDefaults(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	})
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		gc        int
		limit     int64
		wantGC    int
		wantLimit int64
	}{
		{"serve without GOGC and GOMEMLIMIT gets both defaults", []string{"serve"}, nil, defaultGCPercent, defaultMemoryLimit, defaultGCPercent, defaultMemoryLimit},
		{"GOGC set by the operator is left alone", []string{"serve"}, map[string]string{"GOGC": "100"}, -1, defaultMemoryLimit, 100, defaultMemoryLimit},
		{"GOMEMLIMIT set by the operator is left alone", []string{"serve"}, map[string]string{"GOMEMLIMIT": "1GiB"}, defaultGCPercent, -1, defaultGCPercent, math.MaxInt64},
		{"admin commands keep Go's defaults", []string{"user", "list"}, nil, -1, -1, 100, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			gc, limit := applyRuntimeDefaults(tc.args, testEnv(tc.env))
			if gc != tc.gc || limit != tc.limit {
				t.Errorf("applyRuntimeDefaults = %d, %d; want %d, %d", gc, limit, tc.gc, tc.limit)
			}
			if got := debug.SetGCPercent(100); got != tc.wantGC {
				t.Errorf("GC percent = %d; want %d", got, tc.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d; want %d", got, tc.wantLimit)
			}
		})
	}
}

// BenchmarkVerify is authz.Server.Verify over the bbolt store as serve
// wires it: the whole cost authentication adds to an MCP request (the
// token's HMAC signature, a read-only transaction among 200 stored tokens,
// reading the token's record, the audience check), without HTTP; serially and
// from 16 goroutines on 2 cores (ns/op is then wall time per verification
// across all of them).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	secret, err := st.Secret(ctx, "token-hmac", 32)
	if err != nil {
		b.Fatal(err)
	}
	renderer, err := web.New()
	if err != nil {
		b.Fatal(err)
	}
	az, err := authz.New(authz.Config{Issuer: "http://127.0.0.1:8080", Storage: wire.NewAuthzStorage(st), Renderer: renderer, GlobalSecret: secret, Scopes: scopeDescriptions})
	if err != nil {
		b.Fatal(err)
	}
	r := mux.NewRouter()
	az.Register(r)
	post := func(path, body string, basic [2]string, out any) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if basic[0] != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			b.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			b.Fatal(err)
		}
	}
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	post("/register", `{"client_name":"bench","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"notes:read"}`, [2]string{}, &reg)
	var tok benchTokens
	for range 200 {
		post("/token", "grant_type=client_credentials", [2]string{reg.ClientID, reg.ClientSecret}, &tok)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := az.Verify(ctx, tok.AccessToken, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := az.Verify(ctx, tok.AccessToken, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
