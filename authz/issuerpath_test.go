package authz

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/web"
)

// prefixProxy is a reverse proxy that serves the backend under prefix and
// strips it, as `location /mcpd/ { proxy_pass http://mcpd/; }` does;
// anything else is 404.
func prefixProxy(t *testing.T, prefix string, backend func() string) *httptest.Server {
	t.Helper()
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		u, _ := url.Parse(backend())
		r.SetURL(u)
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, prefix)
		r.Out.URL.RawPath = ""
		r.SetXForwarded()
	}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestIssuerPath runs the browser part of the flow through a proxy that
// serves mcpd under /mcpd (SEP-2351: --issuer https://host/mcpd): every
// form, link, cookie and redirect must stay under the issuer.
func TestIssuerPath(t *testing.T) {
	var e *env
	proxy := prefixProxy(t, "/mcpd", func() string { return e.ts.URL })
	issuer := proxy.URL + "/mcpd"
	e = newEnv(t, func(c *Config) { c.Issuer = issuer })
	reg := e.registerPublic("http://127.0.0.1/cb")
	const redirect = "http://127.0.0.1:7002/cb"
	v := oauth2.GenerateVerifier()
	q := url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "scope": {"notes:read"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}, "state": {"state-12345"},
	}
	b := e.browser()
	p := b.get(issuer + "/authorize?" + q.Encode())
	if !isLoginPage(p) {
		t.Fatalf("GET %s/authorize: status %d %.300s; want the login page", issuer, p.status, p.body)
	}

	t.Run("the login form posts to the issuer's path", func(t *testing.T) {
		if got := actionOf(t, p.body); !strings.HasPrefix(got, issuer+"/") {
			t.Errorf("form action %q is not under %s", got, issuer)
		}
	})
	t.Run("the stylesheet loads through the proxy", func(t *testing.T) {
		m := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)"`).FindStringSubmatch(p.body)
		if m == nil || m[1] != "/mcpd/static/style.css" {
			t.Fatalf("stylesheet link %q; want /mcpd/static/style.css", m)
		}
		css := b.get(proxy.URL + m[1])
		if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
			t.Errorf("GET %s: status %d %q", m[1], css.status, css.header.Get("Content-Type"))
		}
	})
	t.Run("the session cookie is scoped to the issuer's path", func(t *testing.T) {
		c := p.header.Get("Set-Cookie")
		if !strings.Contains(c, "Path=/mcpd;") && !strings.HasSuffix(c, "Path=/mcpd") {
			t.Errorf("Set-Cookie %q; want Path=/mcpd", c)
		}
	})

	resp := b.post(actionOf(t, p.body), url.Values{
		"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {hiddenField(t, p.body, "request_id")},
		"username": {"alice"}, "password": {"correct horse"},
	})
	t.Run("signing in redirects back under the issuer", func(t *testing.T) {
		if loc := resp.header.Get("Location"); resp.status != http.StatusSeeOther || !strings.HasPrefix(loc, issuer+"/authorize?") {
			t.Fatalf("status %d Location %q; want 303 to %s/authorize", resp.status, loc, issuer)
		}
	})
	p = b.get(resp.location(t).String())
	t.Run("the consent form posts to the issuer's path", func(t *testing.T) {
		if !isConsentPage(p) {
			t.Fatalf("status %d: %.300s; want the consent page (was the cookie sent?)", p.status, p.body)
		}
		if got := actionOf(t, p.body); !strings.HasPrefix(got, issuer+"/") {
			t.Errorf("form action %q is not under %s", got, issuer)
		}
	})
	p = b.decide(t, p, "allow", []string{"notes:read"}, false)
	loc := p.location(t)
	t.Run("the authorization response names the issuer with its path", func(t *testing.T) {
		if diff := cmp.Diff(issuer, loc.Query().Get("iss")); diff != "" {
			t.Errorf("iss (-want +got):\n%s", diff)
		}
	})
	t.Run("the code is exchanged at the issuer's token endpoint, for the resource under the issuer", func(t *testing.T) {
		cfg := &oauth2.Config{ClientID: reg.ClientID, RedirectURL: redirect,
			Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
		tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v), oauth2.SetAuthURLParam("resource", issuer+"/mcp"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.srv.Verify(context.Background(), tok.AccessToken, nil); err != nil {
			t.Errorf("Verify: %v", err)
		}
		if diff := cmp.Diff(issuer+"/mcp", e.srv.ResourceURL()); diff != "" {
			t.Errorf("resource (-want +got):\n%s", diff)
		}
	})
}

func TestSessionCookieScope(t *testing.T) {
	for _, tt := range []struct {
		issuer, wantName, wantPath string
		wantSecure                 bool
	}{
		{"http://127.0.0.1:8080", "mcpd_session", "/", false},
		{"https://mcp.example", "__Host-mcpd_session", "/", true},
		{"http://127.0.0.1:8080/mcpd", "mcpd_session", "/mcpd", false},
		// Over https the cookie keeps __Host- (no other host, not even a
		// sibling subdomain, can set it: no session planted from there),
		// which needs Path=/; the name tells two issuers under one host
		// apart.
		{"https://mcp.example/mcpd", "__Host-mcpd_session-" + pathTag("/mcpd"), "/", true},
		{"https://mcp.example/tools/mcpd", "__Host-mcpd_session-" + pathTag("/tools/mcpd"), "/", true},
	} {
		t.Run(tt.issuer, func(t *testing.T) {
			u, _ := url.Parse(tt.issuer)
			rend, err := web.New(web.WithBasePath(u.Path))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Config{Issuer: tt.issuer, Storage: newMemStore(), Renderer: rend, Scopes: testScopes,
				GlobalSecret: []byte("0123456789abcdef0123456789abcdef-test"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.setSessionCookie(rec, &session{id: "x"})
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("%d cookies", len(cookies))
			}
			c := cookies[0]
			type attrs struct {
				Name, Path, Domain string
				Secure, HTTPOnly   bool
				SameSite           http.SameSite
			}
			got := attrs{c.Name, c.Path, c.Domain, c.Secure, c.HttpOnly, c.SameSite}
			want := attrs{tt.wantName, tt.wantPath, "", tt.wantSecure, true, http.SameSiteLaxMode}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cookie (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("two issuer paths under one host have cookies of their own", func(t *testing.T) {
		if a, b := pathTag("/mcpd"), pathTag("/tools/mcpd"); a == b || len(a) != 8 {
			t.Errorf("pathTag = %q and %q; want two different 8-character tags", a, b)
		}
	})

	t.Run("a Renderer whose base path is not the issuer's path is refused", func(t *testing.T) {
		rend, _ := web.New()
		_, err := New(Config{Issuer: "https://mcp.example/mcpd", Storage: newMemStore(), Renderer: rend, Scopes: testScopes,
			GlobalSecret: []byte("0123456789abcdef0123456789abcdef-test")})
		if err == nil || !strings.Contains(err.Error(), "WithBasePath") {
			t.Errorf("New = %v; want an error naming web.WithBasePath", err)
		}
	})
}
