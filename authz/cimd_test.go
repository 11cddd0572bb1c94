package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// docServer serves client metadata documents over TLS; docs maps a path to
// a function of the server's URL returning body and Cache-Control.
func docServer(t *testing.T, docs map[string]func(base string) (string, string)) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	var ts *httptest.Server
	ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		f, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		body, cc := f(ts.URL)
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

func cimdDoc(id string, redirects ...string) string {
	b, _ := json.Marshal(map[string]any{
		"client_id":                  id,
		"client_name":                "Doc Client",
		"redirect_uris":              redirects,
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	})
	return string(b)
}

func TestClientMetadataDocuments(t *testing.T) {
	docs, hits := docServer(t, map[string]func(string) (string, string){
		"/good.json":     func(b string) (string, string) { return cimdDoc(b+"/good.json", "http://127.0.0.1/cb"), "max-age=3600" },
		"/nocache.json":  func(b string) (string, string) { return cimdDoc(b+"/nocache.json", "http://127.0.0.1/cb"), "no-store" },
		"/mismatch.json": func(b string) (string, string) { return cimdDoc(b+"/other.json", "http://127.0.0.1/cb"), "" },
		"/badredir.json": func(b string) (string, string) { return cimdDoc(b+"/badredir.json", "http://app.example/cb"), "" },
		"/big.json": func(b string) (string, string) {
			return `{"client_id":"` + b + `/big.json","client_name":"` + strings.Repeat("x", 6000) + `"}`, ""
		},
		"/webscheme.json": func(b string) (string, string) {
			return `{"client_id":"` + b + `/webscheme.json","client_name":"Web","application_type":"web","redirect_uris":["cursor://anysphere.cursor-retrieval/cb"]}`, ""
		},
		"/nativeapp.json": func(b string) (string, string) {
			return `{"client_id":"` + b + `/nativeapp.json","client_name":"Native","application_type":"native","redirect_uris":["http://127.0.0.1/","cursor://anysphere.cursor-retrieval/cb"]}`, ""
		},
		"/secret.json": func(b string) (string, string) {
			return `{"client_id":"` + b + `/secret.json","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, ""
		},
	})
	e := newEnv(t, func(c *Config) {
		c.HTTPClient = docs.Client()
		c.AllowPrivateMetadataHosts = true
	})

	t.Run("an https client_id is fetched and the whole flow works", func(t *testing.T) {
		id := docs.URL + "/good.json"
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: id, redirect: "http://127.0.0.1:5555/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		if !isLoginPage(p) || !strings.Contains(p.body, "Doc Client") {
			t.Fatalf("status %d: %.300s", p.status, p.body)
		}
		p = b.login(t, p, "alice", "correct horse")
		if !strings.Contains(p.body, "verified by its https origin, <strong class=\"host origin\">"+docs.URL+"</strong>") {
			t.Errorf("consent page does not show the document's https origin %s: %s", docs.URL, p.body)
		}
		if !strings.Contains(p.body, "returns to a program on this computer") {
			t.Errorf("consent page does not warn that a loopback redirect is not vouched for")
		}
		if strings.Contains(p.body, "not verified") {
			t.Errorf("consent page calls a metadata-document client not verified")
		}
		tok := e.codeFlow(b, id, "http://127.0.0.1:5556/cb", "notes:read")
		info, err := e.srv.Verify(context.Background(), tok.AccessToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(id, info.Extra["client_id"]); diff != "" {
			t.Errorf("client_id (-want +got):\n%s", diff)
		}
		if c := e.store.client(id); c == nil || c.Source != SourceMetadata {
			t.Errorf("stored client %+v; want source metadata", c)
		}
	})

	t.Run("the document is cached per Cache-Control", func(t *testing.T) {
		for _, tt := range []struct {
			path string
			want int32
		}{{"/good.json", 0}, {"/nocache.json", 2}} {
			before := hits.Load()
			for range 2 {
				e.browser().get(e.authorizeURL(authRequest{clientID: docs.URL + tt.path, redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
			}
			if got := hits.Load() - before; got != tt.want {
				t.Errorf("%s: %d fetches; want %d", tt.path, got, tt.want)
			}
		}
		e.clock.Advance(2 * time.Hour)
		before := hits.Load()
		e.browser().get(e.authorizeURL(authRequest{clientID: docs.URL + "/good.json", redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
		if hits.Load() == before {
			t.Errorf("document not fetched again after max-age")
		}
	})

	for _, tt := range []struct{ name, path string }{
		{"a document whose client_id differs from its URL is refused", "/mismatch.json"},
		{"a document with a bad redirect URI is refused", "/badredir.json"},
		{"a document over 5 KB is refused", "/big.json"},
		{"a document for a confidential client is refused", "/secret.json"},
		{"a web application's document with a private-use scheme is refused (SEP-837)", "/webscheme.json"},
		{"a missing document is refused", "/missing.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := e.browser().get(e.authorizeURL(authRequest{clientID: docs.URL + tt.path, redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
				t.Errorf("status %d location %q; want a 400 error page", p.status, p.header.Get("Location"))
			}
		})
	}

	t.Run("a native application's document may use loopback on any port and a private-use scheme (SEP-837)", func(t *testing.T) {
		p := e.browser().get(e.authorizeURL(authRequest{clientID: docs.URL + "/nativeapp.json", redirect: "http://127.0.0.1:40123/", verifier: oauth2.GenerateVerifier()}))
		if !isLoginPage(p) {
			t.Errorf("status %d: %.300s; want the login page", p.status, p.body)
		}
	})

	t.Run("loopback document hosts are refused unless allowed", func(t *testing.T) {
		strict := newEnv(t, nil) // default HTTP client, private hosts refused
		_, _, err := strict.srv.cimd.load(context.Background(), docs.URL+"/good.json")
		if err == nil || !strings.Contains(err.Error(), "internal address") {
			t.Errorf("load = %v; want a refused fetch", err)
		}
	})

	t.Run("a revoked document client is recorded again from the cache, so its new tokens stay revocable", func(t *testing.T) {
		id := docs.URL + "/good.json"
		e.codeFlow(e.browser(), id, "http://127.0.0.1:5556/cb", "notes:read")
		if err := e.store.DeleteClient(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		before := hits.Load()
		e.codeFlow(e.browser(), id, "http://127.0.0.1:5556/cb", "notes:read")
		if hits.Load() != before {
			t.Errorf("the document was fetched again; want it served from the cache")
		}
		if c := e.store.client(id); c == nil {
			t.Errorf("the client authorized again but is not in the store, where mcpd client revoke finds it")
		}
	})

	t.Run("documents count towards the cap on registered clients", func(t *testing.T) {
		capped := newEnv(t, func(c *Config) {
			c.HTTPClient = docs.Client()
			c.AllowPrivateMetadataHosts = true
			c.MaxClients = 1
		})
		capped.registerPublic("http://127.0.0.1/cb")
		id := docs.URL + "/good.json"
		p := capped.browser().get(capped.authorizeURL(authRequest{clientID: id, redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
		if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
			t.Errorf("status %d location %q; want a 400 error page", p.status, p.header.Get("Location"))
		}
		st, out, _ := capped.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {id}, "code_verifier": {oauth2.GenerateVerifier()}}, "", "")
		if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("token endpoint: status %d %v; want 401 invalid_client", st, out)
		}
		if c := capped.store.client(id); c != nil {
			t.Errorf("a document's client was stored beyond the cap: %+v", c)
		}
	})

	t.Run("with documents off an https client_id is unknown", func(t *testing.T) {
		off := newEnv(t, func(c *Config) {
			c.ClientMetadataDocuments = false
			c.HTTPClient = docs.Client()
		})
		p := off.browser().get(off.authorizeURL(authRequest{clientID: docs.URL + "/good.json", redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
		if p.status != http.StatusBadRequest {
			t.Errorf("status %d; want 400", p.status)
		}
	})
}

func TestCacheLifetime(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 5 * time.Minute},
		{"max-age=60", time.Minute},
		{"public, max-age=999999", 24 * time.Hour},
		{"no-store", 0},
		{"no-cache, max-age=60", 0},
		{"max-age=bogus", 0},
		{"public", 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := cacheLifetime(tt.header); got != tt.want {
			t.Errorf("cacheLifetime(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}

func TestClientMetadataFetchLimit(t *testing.T) {
	docs, hits := docServer(t, map[string]func(string) (string, string){
		"/a.json": func(b string) (string, string) { return cimdDoc(b+"/a.json", "http://127.0.0.1/cb"), "max-age=3600" },
		"/b.json": func(b string) (string, string) { return cimdDoc(b+"/b.json", "http://127.0.0.1/cb"), "max-age=3600" },
		"/c.json": func(b string) (string, string) { return cimdDoc(b+"/c.json", "http://127.0.0.1/cb"), "max-age=3600" },
	})
	e := newEnv(t, func(c *Config) {
		c.HTTPClient = docs.Client()
		c.AllowPrivateMetadataHosts = true
		c.RegistrationsPerMinute = 2
	})
	get := func(path string) page {
		return e.browser().get(e.authorizeURL(authRequest{clientID: docs.URL + path, redirect: "http://127.0.0.1:5555/cb", verifier: oauth2.GenerateVerifier()}))
	}
	t.Run("document fetches are rate-limited per client address", func(t *testing.T) {
		var statuses []int
		for _, path := range []string{"/a.json", "/b.json", "/c.json"} {
			statuses = append(statuses, get(path).status)
		}
		if diff := cmp.Diff([]int{200, 200, 400}, statuses); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		if got := hits.Load(); got != 2 {
			t.Errorf("%d documents fetched; want 2", got)
		}
	})
	t.Run("the token endpoint's fetches count too", func(t *testing.T) {
		st, out, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {docs.URL + "/c.json"}, "code_verifier": {oauth2.GenerateVerifier()}}, "", "")
		if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("status %d %v; want 401 invalid_client", st, out)
		}
	})
	t.Run("cached documents are not limited", func(t *testing.T) {
		if p := get("/a.json"); p.status != http.StatusOK {
			t.Errorf("status %d; want the login page", p.status)
		}
	})
	t.Run("the limit lifts after a minute", func(t *testing.T) {
		e.clock.Advance(61 * time.Second)
		if p := get("/c.json"); p.status != http.StatusOK {
			t.Errorf("status %d; want the login page", p.status)
		}
	})
}

func TestMetadataHostAddresses(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"10.1.2.3", false},
		{"169.254.169.254", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:10.0.0.1", false},
		{"::1", false},
		{"fd00::1", false},
		{"fe80::1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"100.64.0.1", false},
		{"198.18.0.1", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"::7f00:1", false},         // IPv4-compatible 127.0.0.1
		{"64:ff9b::a00:1", false},   // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", false},  // NAT64 of 127.0.0.1
		{"2002:7f00:1::1", false},   // 6to4 of 127.0.0.1
		{"2001:0:7f00:1::1", false}, // Teredo
		{"fec0::1", false},
	} {
		name := "a non-public address is refused: " + tt.addr
		if tt.public {
			name = "a public address is fetched: " + tt.addr
		}
		t.Run(name, func(t *testing.T) {
			if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
				t.Errorf("publicAddr(%s) = %v; want %v", tt.addr, got, tt.public)
			}
		})
	}

	t.Run("the dialer checks the address it connects to, not an earlier lookup", func(t *testing.T) {
		hc := newMetadataHTTPClient(false)
		// A name that resolves to loopback stands in for a rebinding answer.
		_, err := hc.Get("https://localhost:1/doc.json")
		if err == nil || !strings.Contains(err.Error(), "non-public address") {
			t.Errorf("fetch from a name resolving to loopback: %v; want a refused dial", err)
		}
	})
}

// TestClientMetadataFetchFailures: when a client metadata document cannot
// be used, the page says why in plain words and, for a document mcpd
// cannot fetch or use, how to switch documents off (VS Code offline:
// issue 12). It never redirects and is always a 400.
func TestClientMetadataFetchFailures(t *testing.T) {
	docs, _ := docServer(t, map[string]func(string) (string, string){
		"/notjson.json": func(string) (string, string) { return `<html>hello</html>`, "" },
		"/noname.json": func(b string) (string, string) {
			return `{"client_id":"` + b + `/noname.json","redirect_uris":["http://127.0.0.1/"]}`, ""
		},
		"/mismatch.json": func(b string) (string, string) { return cimdDoc(b+"/other.json", "http://127.0.0.1/cb"), "" },
	})
	redirector := httptest.NewTLSServer(http.RedirectHandler("https://elsewhere.example/doc.json", http.StatusFound))
	t.Cleanup(redirector.Close)
	// mcpd's own metadata client, trusting the test servers' certificate.
	ownClient := newMetadataHTTPClient(true)
	ownClient.Transport.(*http.Transport).TLSClientConfig = redirector.Client().Transport.(*http.Transport).TLSClientConfig
	plain := httptest.NewServer(http.NotFoundHandler()) // not TLS
	t.Cleanup(plain.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there any more
	failing := func(err error) *http.Client {
		return &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, err })}
	}
	statusServer := func(code int) *httptest.Server {
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(ts.Close)
		return ts
	}
	const vscode = "https://vscode.dev/oauth/client-metadata.json"
	const cimdOff = "--client-metadata-documents false"
	tests := []struct {
		name         string
		clientID     string
		hc           *http.Client // nil: mcpd's own metadata client
		allowPrivate bool
		want         []string // in the page
		wantCIMDOff  bool     // the page says how to switch documents off
	}{
		{"offline: the name does not resolve", vscode,
			failing(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "vscode.dev", IsNotFound: true}}), false,
			[]string{vscode, "vscode.dev could not be resolved (DNS)", "no internet access"}, true},
		{"the DNS lookup times out", vscode,
			failing(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "i/o timeout", Name: "vscode.dev", IsTimeout: true}}), false,
			[]string{"looking up the name vscode.dev timed out (DNS)"}, true},
		{"no network route", vscode,
			failing(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}), false,
			[]string{"no network route to vscode.dev"}, true},
		{"no answer in time", vscode,
			failing(fmt.Errorf("fetching: %w", context.DeadlineExceeded)), false,
			[]string{"vscode.dev did not answer within 5 seconds"}, true},
		{"the TLS certificate is not trusted", docs.URL + "/noname.json", nil, true,
			[]string{"TLS certificate of 127.0.0.1 is not signed by an authority this computer trusts"}, true},
		{"the host does not speak TLS", strings.Replace(plain.URL, "http://", "https://", 1) + "/doc.json", nil, true,
			[]string{"127.0.0.1 did not answer with TLS"}, true},
		{"the connection is refused", strings.Replace(closedURL, "http://", "https://", 1) + "/doc.json", nil, true,
			[]string{"refused the connection"}, true},
		{"an internal address is not fetched from", docs.URL + "/noname.json", nil, false,
			[]string{"internal address", "--allow-private-metadata-hosts true"}, true},
		{"a redirect is not followed", redirector.URL + "/doc.json", ownClient, true,
			[]string{"answered with a redirect"}, true},
		{"an HTTP status other than 200", statusServer(http.StatusNotFound).URL + "/doc.json", docs.Client(), true,
			[]string{"answered HTTP 404 Not Found instead of the document"}, true},
		{"a server error upstream", statusServer(http.StatusServiceUnavailable).URL + "/doc.json", docs.Client(), true,
			[]string{"answered HTTP 503 Service Unavailable"}, true},
		{"a document that is not JSON", docs.URL + "/notjson.json", docs.Client(), true,
			[]string{"not a JSON object of client metadata", "makers can fix"}, true},
		{"a document without client_name (MCP requires one)", docs.URL + "/noname.json", docs.Client(), true,
			[]string{"it has no client_name"}, true},
		{"a document naming another client_id", docs.URL + "/mismatch.json", docs.Client(), true,
			[]string{"its client_id does not equal its URL"}, true},
		{"a client_id that is not a document URL", "https://vscode.dev", docs.Client(), true,
			[]string{"the client_id URL must have a path"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.HTTPClient = tt.hc
				c.AllowPrivateMetadataHosts = tt.allowPrivate
			})
			p := e.browser().get(e.authorizeURL(authRequest{clientID: tt.clientID, redirect: "http://127.0.0.1:33418/", verifier: oauth2.GenerateVerifier()}))
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
				t.Errorf("status %d, Location %q; want a 400 page", p.status, p.header.Get("Location"))
			}
			text := html.UnescapeString(p.body)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("page lacks %q:\n%s", w, text)
				}
			}
			if got := strings.Contains(text, cimdOff); got != tt.wantCIMDOff {
				t.Errorf("page names %s: %v; want %v", cimdOff, got, tt.wantCIMDOff)
			}
		})
	}

	t.Run("with documents off, an https client_id is told why it is unknown", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.ClientMetadataDocuments = false })
		p := e.browser().get(e.authorizeURL(authRequest{clientID: vscode, redirect: "http://127.0.0.1:33418/", verifier: oauth2.GenerateVerifier()}))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "does not use them") {
			t.Errorf("status %d: %s", p.status, p.body)
		}
	})
}

func TestDescribeFetchError(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"a reset connection", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "the connection to h was reset"},
		{"a TLS alert", &url.Error{Op: "Get", Err: tls.AlertError(40)}, "the TLS handshake with h failed"},
		{"a certificate for another name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}, "not valid for that name"},
		{"an expired certificate", x509.CertificateInvalidError{Reason: x509.Expired}, "expired"},
		{"anything else", errors.New("boom"), "the connection to h failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeFetchError("h", tt.err); !strings.Contains(got, tt.want) {
				t.Errorf("describeFetchError = %q; want it to contain %q", got, tt.want)
			}
		})
	}
}
