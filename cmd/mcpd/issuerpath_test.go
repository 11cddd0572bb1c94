package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// pathProxy is a reverse proxy in front of mcpd that serves it under
// prefix, the way an operator puts mcpd at https://host/mcpd next to other
// applications. It records the paths it was asked for.
type pathProxy struct {
	prefix string
	// strip: /mcpd/authorize reaches mcpd as /authorize (nginx
	// `proxy_pass http://mcpd/;`); otherwise unchanged (`proxy_pass
	// http://mcpd;`).
	strip bool
	// wellKnown: /.well-known/<suffix>/mcpd… at the host's root is
	// forwarded too, unchanged, as docs/operations.md shows.
	wellKnown bool
	backend   *url.URL

	mu        sync.Mutex
	requested []string
}

func (p *pathProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requested = append(p.requested, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	out := r.URL.Path
	switch {
	case strings.HasPrefix(r.URL.Path, p.prefix+"/"):
		if p.strip {
			out = strings.TrimPrefix(r.URL.Path, p.prefix)
		}
	case p.wellKnown && strings.HasPrefix(r.URL.Path, "/.well-known/") && strings.Contains(r.URL.Path+"/", p.prefix+"/"):
	default:
		http.NotFound(w, r)
		return
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(p.backend)
		pr.Out.URL.Path, pr.Out.URL.RawPath = out, ""
		pr.SetXForwarded()
	}}
	rp.ServeHTTP(w, r)
}

func (p *pathProxy) asked(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.requested, "GET "+path)
}

// TestIssuerPathBehindProxy runs the real server with --issuer
// http://HOST/mcpd behind a reverse proxy and a real client (the go-sdk's
// OAuth client with discovery, registration, PKCE, login and consent over
// HTTP, tools and refresh) through it: SEP-2351 end to end.
func TestIssuerPathBehindProxy(t *testing.T) {
	for _, tt := range []struct {
		name             string
		strip, wellKnown bool
		// metadata is the AS metadata location the client ends up with.
		metadata string
	}{
		{"a prefix-stripping proxy that forwards only /mcpd: the client finds the OpenID Connect document by path appending",
			true, false, "/mcpd/.well-known/openid-configuration"},
		{"a prefix-stripping proxy that also forwards the root well-known paths: the client finds RFC 8414 metadata by path insertion",
			true, true, "/.well-known/oauth-authorization-server/mcpd"},
		{"a proxy that passes /mcpd on unchanged",
			false, true, "/.well-known/oauth-authorization-server/mcpd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := &pathProxy{prefix: "/mcpd", strip: tt.strip, wellKnown: tt.wellKnown}
			front := httptest.NewServer(proxy)
			defer front.Close()
			issuer := front.URL + "/mcpd"
			srv := startServer(t, "--issuer", issuer, "--access-token-ttl", "5s")
			proxy.backend, _ = url.Parse(srv.URL)
			mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", srv.Data)

			b := newBrowser(t)
			var authURLs []string
			fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				authURLs = append(authURLs, args.URL)
				loc := b.authorize(args.URL, "alice", "alice-pw", "allow", nil, false)
				q := loc.Query()
				if q.Get("code") == "" {
					return nil, errors.New("authorization ended without a code: " + loc.String())
				}
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			}
			handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
				DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
					ClientName:              "behind a proxy",
					RedirectURIs:            []string{"http://127.0.0.1:8765/callback"},
					GrantTypes:              []string{"authorization_code", "refresh_token"},
					TokenEndpointAuthMethod: "none",
				}},
				AuthorizationCodeFetcher: fetch,
				RequestRefreshToken:      true,
				// A client that asks for offline_access (SEP-2207) on its own.
				ScopeFilter: func(s []string) []string { return append(s, "offline_access") },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			client := sdk.NewClient(&sdk.Implementation{Name: "proxied", Version: "1"}, nil)
			cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: issuer + "/mcp", OAuthHandler: handler}, nil)
			if err != nil {
				t.Fatalf("connect through the proxy: %v\nproxy saw: %q", err, proxy.requested)
			}
			defer cs.Close()
			for i := range 2 { // the second call refreshes (5 s tokens, 10 s margin)
				res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
				if err != nil {
					t.Fatalf("whoami %d: %v", i, err)
				}
				got, _ := res.StructuredContent.(map[string]any)
				if got["user"] != "alice" {
					t.Errorf("whoami %d: %v", i, got)
				}
				var scopes []string
				for _, s := range got["scopes"].([]any) {
					scopes = append(scopes, s.(string))
				}
				slices.Sort(scopes)
				if diff := cmp.Diff([]string{"api:call", "notes:read", "notes:write"}, scopes); diff != "" {
					t.Errorf("whoami %d: scopes (-want +got), the three resource scopes and no offline_access:\n%s", i, diff)
				}
			}
			if len(authURLs) != 1 || !strings.HasPrefix(authURLs[0], issuer+"/authorize?") {
				t.Errorf("authorization URLs %q; want one under %s", authURLs, issuer)
			}
			if !proxy.asked(tt.metadata) {
				t.Errorf("the client never fetched %s; proxy saw %q", tt.metadata, proxy.requested)
			}
			if !proxy.asked("/mcpd/static/style.css") {
				// The browser here does not load stylesheets; fetch it as one would.
				resp, body := b.get(front.URL + "/mcpd/static/style.css")
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "prefers-color-scheme") {
					t.Errorf("stylesheet through the proxy: %s", resp.Status)
				}
			}
			for _, p := range []string{"/mcpd/token", "/mcpd/register"} {
				proxy.mu.Lock()
				seen := slices.Contains(proxy.requested, "POST "+p)
				proxy.mu.Unlock()
				if !seen {
					t.Errorf("no POST %s through the proxy; it saw %q", p, proxy.requested)
				}
			}
		})
	}
}

func TestAcceptIssuerPath(t *testing.T) {
	// An issuer path that is also the name of one of mcpd's routes.
	srv := startServer(t, "--issuer", "http://127.0.0.1:1/mcp")
	for _, tt := range []struct {
		name, method, path string
		want               int
	}{
		{"a route that matches as sent is served as sent", http.MethodPost, "/mcp", http.StatusUnauthorized},
		{"the path-prefixed route is served without the prefix", http.MethodPost, "/mcp/mcp", http.StatusUnauthorized},
		{"a prefixed page is found", http.MethodGet, "/mcp/.well-known/oauth-authorization-server", http.StatusOK},
		{"the prefix alone is not a page", http.MethodGet, "/mcp/", http.StatusNotFound},
		{"a method mismatch is not retried without the prefix", http.MethodGet, "/mcp/token", http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s: %s; want %d", tt.method, tt.path, resp.Status, tt.want)
			}
		})
	}
}
