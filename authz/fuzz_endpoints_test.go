package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what the authorization server reads from outside:
// form bodies and headers at the token, revocation, introspection, login
// and consent endpoints, redirect URIs, resource indicators, client
// addresses and client ID metadata documents. (Registration bodies and
// authorization queries are fuzzed in fuzz_test.go.)

// FuzzTokenEndpoints posts arbitrary forms with arbitrary Authorization
// headers to /token, /revoke and /introspect: never a 5xx or a panic,
// always a JSON answer that is valid UTF-8, and no token without the
// client's secret.
func FuzzTokenEndpoints(f *testing.F) {
	e := newEnv(f, nil)
	cc := e.registerConfidential("notes:read")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(cc.ClientID)+":"+url.QueryEscape(cc.ClientSecret)))
	for i, seed := range []struct{ body, auth string }{
		{"grant_type=client_credentials&scope=notes%3Aread", basic},
		{"grant_type=client_credentials&scope=notes%3Aread+api%3Acall&resource=http%3A%2F%2Fother", basic},
		{"grant_type=refresh_token&refresh_token=ory_rt_x.y&client_id=" + cc.ClientID, ""},
		{"grant_type=authorization_code&code=x&code_verifier=y&redirect_uri=http%3A%2F%2F127.0.0.1%2F", basic},
		{"token=abc&token_type_hint=refresh_token", basic},
		{"%zz=%zz&&&;", "Basic %%%"},
		{"grant_type=client_credentials", "Basic " + base64.StdEncoding.EncodeToString([]byte(cc.ClientID+":wrong"))},
	} {
		f.Add(uint8(i), seed.body, seed.auth)
	}
	paths := []string{"/token", "/revoke", "/introspect"}
	f.Fuzz(func(t *testing.T, which uint8, body, authorization string) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			req.Header["Authorization"] = []string{authorization}
		}
		rec := httptest.NewRecorder()
		switch path {
		case "/token":
			e.srv.handleToken(rec, req)
		case "/revoke":
			e.srv.handleRevoke(rec, req)
		default:
			e.srv.handleIntrospect(rec, req)
		}
		out := rec.Body.Bytes()
		if rec.Code >= 500 {
			t.Fatalf("%s %q (auth %q): status %d %s", path, body, authorization, rec.Code, out)
		}
		if !utf8.Valid(out) || (len(bytes.TrimSpace(out)) > 0 && !json.Valid(out)) {
			t.Fatalf("%s %q: the answer is not valid JSON: %q", path, body, out)
		}
		if path == "/token" && rec.Code == http.StatusOK && authorization != basic && !strings.Contains(body, cc.ClientSecret) {
			t.Fatalf("a token without the client's secret: %q (auth %q): %s", body, authorization, out)
		}
	})
}

// FuzzLoginAndConsentForms posts arbitrary forms and cookies to the login
// and consent endpoints. Without a session the server issued, and a CSRF
// token bound to it, nothing may happen: never a redirect, never a 5xx.
func FuzzLoginAndConsentForms(f *testing.F) {
	e := newEnv(f, nil)
	f.Add(false, "username=alice&password=pw&request_id=x&csrf_token=y", "mcpd_session=abc")
	f.Add(true, "action=allow&scope=notes%3Aread&request_id=x&csrf_token=y", "mcpd_session=")
	f.Add(true, "action=deny", "")
	f.Add(false, "%zz&&=&", "mcpd_session=\x00\xff")
	f.Fuzz(func(t *testing.T, consent bool, body, cookie string) {
		path, h := loginPath, e.srv.handlePasswordLogin
		if consent {
			path, h = consentPath, e.srv.handleConsent
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header["Cookie"] = []string{cookie}
		rec := httptest.NewRecorder()
		h(rec, req)
		if rec.Code >= 500 || rec.Code < 400 {
			t.Fatalf("%s %q (cookie %q): status %d; want a 4xx", path, body, cookie, rec.Code)
		}
		if loc := rec.Header().Get("Location"); loc != "" {
			t.Fatalf("%s %q: redirected to %q without a session", path, body, loc)
		}
		if !utf8.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: the page is not valid UTF-8", path, body)
		}
	})
}

// FuzzRedirectURIs checks registration and matching together: a URI that
// registration accepts is printable ASCII, and a presented URI matches a
// registered one only exactly or, for loopback http, with nothing but the
// port changed.
func FuzzRedirectURIs(f *testing.F) {
	for _, seed := range [][2]string{
		{"http://127.0.0.1/callback", "http://127.0.0.1:33418/callback"},
		{"http://localhost/cb", "http://LOCALHOST:1/cb"},
		{"http://[::1]/cb?x=1", "http://[::1]:9/cb?x=1"},
		{"https://app.example/cb", "https://app.example/cb/../cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1@evil.example/cb"},
		{"cursor://anysphere/cb", "cursor://anysphere/cb"},
		{"http://127.0.0.1/c%62", "http://127.0.0.1:1/cb"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, registered, presented string) {
		if checkRedirectURI(registered) != nil {
			return
		}
		if !plainASCII(registered) {
			t.Fatalf("registration accepted %q, which is not printable ASCII", registered)
		}
		if !matchRedirectURI(presented, []string{registered}) || presented == registered {
			return
		}
		p, err1 := url.Parse(presented)
		r, err2 := url.Parse(registered)
		if err1 != nil || err2 != nil {
			t.Fatalf("%q matched %q but does not parse", presented, registered)
		}
		if p.Scheme != "http" || !isLoopbackHost(p.Hostname()) || p.User != nil || p.Fragment != "" {
			t.Fatalf("%q matched %q but is not a plain loopback http URI", presented, registered)
		}
		if !strings.EqualFold(p.Hostname(), r.Hostname()) || p.EscapedPath() != r.EscapedPath() || p.RawQuery != r.RawQuery {
			t.Fatalf("%q matched %q with more than the port changed", presented, registered)
		}
	})
}

// FuzzResourceIndicator checks that the only resource accepted is the MCP
// endpoint's, up to a trailing slash and the case of scheme and host.
func FuzzResourceIndicator(f *testing.F) {
	const want = "http://127.0.0.1:8080/mcp"
	for _, seed := range []string{want, want + "/", "HTTP://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/MCP", "http://127.0.0.1:8080/mcp?x", "http://127.0.0.1:8080/mcp#f", "http://u@127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp/../mcp", "http://127.0.0.1:8080/%6dcp"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, requested string) {
		if !sameResource(requested, want) {
			return
		}
		u, err := url.Parse(requested)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse", requested)
		}
		if !strings.EqualFold(u.Scheme, "http") || !strings.EqualFold(u.Host, "127.0.0.1:8080") || strings.TrimSuffix(u.Path, "/") != "/mcp" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			t.Fatalf("accepted %q as %q", requested, want)
		}
	})
}

// FuzzClientAddress feeds arbitrary peers and X-Forwarded-For headers to
// the address the rate limits key on: without trusted proxies the header
// is ignored; with them, the answer is an address from the header or the
// peer, never anything else.
func FuzzClientAddress(f *testing.F) {
	plain := newEnv(f, nil)
	proxied := newEnv(f, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	for _, seed := range [][2]string{
		{"127.0.0.1:1234", "203.0.113.7"},
		{"[::1]:80", "2001:db8::1, 127.0.0.2"},
		{"192.0.2.1:1", "10.0.0.1"},
		{"127.0.0.1:1", "garbage, 198.51.100.1"},
		{"[fe80::1%eth0]:1", ""},
		{"not an address", "1.2.3.4"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		if xff != "" {
			req.Header["X-Forwarded-For"] = []string{xff}
		}
		got := plain.srv.clientAddr(req)
		if peer, err := netip.ParseAddrPort(remote); err == nil && got != peer.Addr().Unmap().String() {
			t.Fatalf("untrusted peer %q with X-Forwarded-For %q: address %q", remote, xff, got)
		}
		plain.srv.limitKey(req)
		got = proxied.srv.clientAddr(req)
		if got != remote {
			candidates := map[netip.Addr]bool{}
			if ap, err := netip.ParseAddrPort(remote); err == nil {
				candidates[ap.Addr().Unmap()] = true
			} else if a, err := netip.ParseAddr(remote); err == nil {
				candidates[a.Unmap()] = true
			}
			for _, hop := range strings.Split(xff, ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil {
					candidates[a.Unmap()] = true
				}
			}
			if a, err := netip.ParseAddr(got); err != nil || !candidates[a] {
				t.Fatalf("peer %q, X-Forwarded-For %q: address %q is from neither", remote, xff, got)
			}
		}
		proxied.srv.limitKey(req)
	})
}

// FuzzClientMetadataDocument serves arbitrary documents (and Cache-Control
// headers) as a client's metadata: an accepted document describes a
// public client named by its own URL, with redirect URIs registration
// would accept; the cache lifetime stays within its cap.
func FuzzClientMetadataDocument(f *testing.F) {
	const id = "https://client.example/mcp.json"
	var doc, cacheControl atomicString
	e := newEnv(f, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{}
			if cc := cacheControl.load(); cc != "" {
				h["Cache-Control"] = []string{cc}
			}
			return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader(doc.load())), Request: r}, nil
		})}
	})
	f.Add(`{"client_id":"`+id+`","client_name":"Client","redirect_uris":["http://127.0.0.1/cb"]}`, "max-age=60")
	f.Add(`{"client_id":"`+id+`","redirect_uris":["https://client.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, "no-store")
	f.Add(`{"client_id":"`+id+`","client_secret":"s","redirect_uris":["http://127.0.0.1/cb"]}`, "max-age=99999999999999999999")
	f.Add(`{"client_id":"https://other.example/","redirect_uris":["http://127.0.0.1/cb"]}`, "max-age=-1, no-cache")
	f.Add(`[]`, `max-age="5"`)
	f.Fuzz(func(t *testing.T, body, cc string) {
		doc.store(body)
		cacheControl.store(cc)
		c, ttl, err := e.srv.cimd.load(context.Background(), id)
		if err != nil {
			return
		}
		if c.ID != id || c.MetadataURL != id || !c.IsPublic() || len(c.SecretHash) != 0 {
			t.Fatalf("document %q gave client %+v", body, c)
		}
		for _, u := range c.RedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				t.Fatalf("document %q: redirect URI %q accepted: %v", body, u, err)
			}
		}
		if ttl < 0 || ttl > cimdMaxCache {
			t.Fatalf("Cache-Control %q: lifetime %s", cc, ttl)
		}
	})
}

// atomicString is a string shared with an HTTP transport goroutine.
type atomicString struct{ v atomic.Value }

func (s *atomicString) store(v string) { s.v.Store(v) }

func (s *atomicString) load() string {
	v, _ := s.v.Load().(string)
	return v
}
