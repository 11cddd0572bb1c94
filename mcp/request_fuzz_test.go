package mcp

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what the MCP endpoint reads from outside: the
// Authorization, Origin and Host headers, whole JSON-RPC request bodies,
// and the paths api_call is asked for. (The scope check's reading of a
// body is fuzzed in stepup_fuzz_test.go.)

// FuzzCredentials checks the Authorization header parser: a token comes
// only from the Bearer or DPoP scheme (any case), and is one word.
func FuzzCredentials(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer  abc ", "BEARER a b", "Basic abc", "Bearer", "Bearer \t", "DPoP abc", "dpop abc", "Bearer abc\x00def"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Header["Authorization"] = []string{header}
		scheme, token, ok := credentials(r)
		if !ok {
			return
		}
		given, _, _ := strings.Cut(strings.TrimSpace(header), " ")
		if !strings.EqualFold(given, scheme) || (scheme != schemeBearer && scheme != schemeDPoP) {
			t.Fatalf("%q: scheme %q", header, scheme)
		}
		if token == "" || strings.ContainsAny(token, " \t") || !strings.Contains(header, token) {
			t.Fatalf("%q: token %q", header, token)
		}
	})
}

// FuzzOriginPolicy checks the Origin and Host checks against their rule:
// allowed are the issuer's own, loopback ones, and the configured extras.
func FuzzOriginPolicy(f *testing.F) {
	issuer, _ := url.Parse("https://mcp.example.com")
	p, err := newOriginPolicy(issuer, []string{"https://inspector.example"}, []string{"internal:8080"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"https://mcp.example.com", "http://127.0.0.1:6274", "http://localhost.evil.example", "http://127.0.0.1.evil.example", "null", "https://MCP.example.com:443", "http://[::1]:1", "https://inspector.example", "internal:8080", "evil.example"} {
		f.Add(seed)
	}
	loopback := func(host string) bool {
		host = strings.ToLower(host)
		if ip := net.ParseIP(host); ip != nil {
			return ip.IsLoopback()
		}
		return host == "localhost" || strings.HasSuffix(host, ".localhost")
	}
	f.Fuzz(func(t *testing.T, v string) {
		if p.originAllowed(v) && v != "" {
			u, err := url.Parse(v)
			if err != nil {
				t.Fatalf("origin %q allowed but does not parse", v)
			}
			h := strings.ToLower(u.Hostname())
			if !loopback(h) && h != "mcp.example.com" && h != "inspector.example" {
				t.Fatalf("origin %q (host %q) allowed", v, h)
			}
		}
		if p.hostAllowed(v) {
			h := v
			if hh, _, err := net.SplitHostPort(v); err == nil {
				h = hh
			}
			h = strings.ToLower(strings.Trim(h, "[]"))
			if !loopback(h) && h != "mcp.example.com" && h != "internal" {
				t.Fatalf("host %q allowed", v)
			}
		}
	})
}

// FuzzUpstreamPath checks api_call's path resolution: whatever the caller
// asks for, the URL called is on the upstream's host, under one of its
// prefixes on a segment boundary, with no dot segment.
func FuzzUpstreamPath(f *testing.F) {
	u, err := newUpstream(Upstream{Name: "gh", BaseURL: "https://api.example.com/v1", Methods: []string{"GET"}, PathPrefixes: []string{"/repos/", "/users"}}, http.DefaultTransport)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"/repos/a/b", "/repos/../admin", "/users?x=1", "//evil.example/x", "/repos/%2e%2e/admin", "/usersx", "/repos\\..\\admin", "/repos/a#f", "https://evil.example/repos/x", "/repos/a/./b", "/users/%252e%252e/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		target, err := u.resolve(p)
		if err != nil {
			return
		}
		again, err := url.Parse(target.String())
		if err != nil {
			t.Fatalf("%q resolved to %q, which does not parse", p, target)
		}
		if again.Scheme != "https" || again.Host != "api.example.com" || again.User != nil {
			t.Fatalf("%q resolved to %q: another host", p, target)
		}
		rest, ok := strings.CutPrefix(again.Path, "/v1")
		if !ok || !(rest == "/users" || strings.HasPrefix(rest, "/users/") || rest == "/repos" || strings.HasPrefix(rest, "/repos/")) {
			t.Fatalf("%q resolved to %q: outside the prefixes", p, target)
		}
		if slices.Contains(strings.Split(again.Path, "/"), "..") || slices.Contains(strings.Split(again.Path, "/"), ".") {
			t.Fatalf("%q resolved to %q: a dot segment", p, target)
		}
	})
}

// FuzzMCPRequest posts arbitrary bodies to /mcp, with and without a
// session: never a 5xx or a panic, and what comes back is valid UTF-8
// (JSON where it says so).
func FuzzMCPRequest(f *testing.F) {
	env := newTestEnv(f, nil)
	resp, err := postMCP(env.ts.URL, []byte(initializeBody), "")
	if err != nil {
		f.Fatal(err)
	}
	sid := resp.Header.Get(sessionIDHeader)
	resp.Body.Close()
	for _, seed := range []string{
		initializeBody,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b","tags":["x"]}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"note_search","arguments":{"query":"\u0000"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"note://../x"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"summarize_notes","arguments":{"query":"x"}}}`,
		`[{"jsonrpc":"2.0","id":5,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"whoami","arguments":[[[[[[]]]]]]}}`,
		"\x80", // the SDK quoted this back in its error
		`{"jsonrpc":"2.0","id":7,"method":"ping","x":"` + "\xff\xfe" + `"}`, // bytes that are not UTF-8 inside a string
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, withSession bool) {
		session := ""
		if withSession {
			session = sid
		}
		resp, err := postMCP(env.ts.URL, body, session)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%q: status %d %s", body, resp.StatusCode, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("%q: the answer is not valid UTF-8: %q", body, out)
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(bytes.TrimSpace(out)) > 0 && !json.Valid(out) {
			t.Fatalf("%q: the answer is not valid JSON: %q", body, out)
		}
	})
}

// postMCP posts body to /mcp with alice's token and, if not empty, a
// session id.
func postMCP(base string, body []byte, sid string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, base+Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer alice-all")
	if sid != "" {
		req.Header.Set(sessionIDHeader, sid)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	return http.DefaultClient.Do(req)
}
