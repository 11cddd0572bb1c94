package mcp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults for an Upstream that leaves them zero.
const (
	defaultUpstreamTimeout  = 10 * time.Second
	defaultMaxResponseBytes = 1 << 20
)

// Upstream is an HTTP API that the api_call tool may call on the server's
// own credentials, or as the signed-in user with the user's own token at an
// identity provider (never the caller's token to mcpd).
type Upstream struct {
	// Name is what api_call's "upstream" argument selects.
	Name string
	// BaseURL is the absolute http(s) URL paths are appended to.
	BaseURL string
	// Methods are the allowed HTTP methods; empty means GET only.
	Methods []string
	// PathPrefixes are the allowed path prefixes, matched on whole
	// segments ("/v1" allows /v1 and /v1/x, not /v10); empty means "/".
	PathPrefixes []string
	// Auth is how the server authenticates to the upstream.
	Auth UpstreamAuth
	// Timeout bounds a whole call, token request included; 0 means 10 s.
	Timeout time.Duration
	// MaxResponseBytes caps a response body; 0 means 1 MiB. A larger
	// response is a tool error.
	MaxResponseBytes int64
}

// UpstreamAuth is how the server authenticates to an upstream.
type UpstreamAuth struct {
	// Type is "none" (or ""), "bearer", "client_credentials" or "user".
	Type string
	// BearerEnv names the environment variable holding a static bearer
	// token (Type "bearer").
	BearerEnv string
	// TokenURL, ClientID, ClientSecretEnv (the environment variable
	// holding the secret) and Scopes configure an OAuth client-credentials
	// grant against the upstream's own authorization server (Type
	// "client_credentials"). Tokens are cached and fetched again before
	// they expire.
	TokenURL        string
	ClientID        string
	ClientSecretEnv string
	Scopes          []string
	// IdentityProvider names the identity provider whose token of the
	// signed-in user is sent (Type "user"); Config.UserTokens hands it out.
	IdentityProvider string
}

// upstream is a validated Upstream with its HTTP client.
type upstream struct {
	Upstream
	base   *url.URL
	client *http.Client
}

// newUpstreams validates the configured upstreams and builds a client for
// each; secrets are read from the environment once, here. An upstream of
// auth type "user" needs userTokens.
func newUpstreams(cfgs []Upstream, hc *http.Client, userTokens UserTokens) (map[string]*upstream, error) {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out := make(map[string]*upstream, len(cfgs))
	for _, c := range cfgs {
		u, err := newUpstream(c, base)
		if err != nil {
			return nil, fmt.Errorf("mcp: upstream %q: %w", c.Name, err)
		}
		if u.Auth.Type == "user" && userTokens == nil {
			return nil, fmt.Errorf("mcp: upstream %q: auth type user needs Config.UserTokens", c.Name)
		}
		if _, dup := out[u.Name]; dup {
			return nil, fmt.Errorf("mcp: upstream %q declared twice", u.Name)
		}
		out[u.Name] = u
	}
	return out, nil
}

func newUpstream(c Upstream, base http.RoundTripper) (*upstream, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("name is required")
	}
	bu, err := url.Parse(strings.TrimSuffix(c.BaseURL, "/"))
	if err != nil || (bu.Scheme != "http" && bu.Scheme != "https") || bu.Host == "" || bu.RawQuery != "" || bu.Fragment != "" {
		return nil, fmt.Errorf("base URL %q is not an absolute http(s) URL without query", c.BaseURL)
	}
	if len(c.Methods) == 0 {
		c.Methods = []string{http.MethodGet}
	}
	methods := make([]string, len(c.Methods))
	for i, m := range c.Methods {
		methods[i] = strings.ToUpper(m)
	}
	c.Methods = methods
	if len(c.PathPrefixes) == 0 {
		c.PathPrefixes = []string{"/"}
	}
	for _, p := range c.PathPrefixes {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return nil, fmt.Errorf("path prefix %q must start with / and hold no dot-dot segment", p)
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultUpstreamTimeout
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = defaultMaxResponseBytes
	}

	transport := base
	switch c.Auth.Type {
	case "", "none":
	case "bearer":
		tok := os.Getenv(c.Auth.BearerEnv)
		if c.Auth.BearerEnv == "" || tok == "" {
			return nil, fmt.Errorf("bearer auth needs the environment variable named by BearerEnv (%q) to be set", c.Auth.BearerEnv)
		}
		transport = &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}), Base: base}
	case "client_credentials":
		secret := os.Getenv(c.Auth.ClientSecretEnv)
		if c.Auth.TokenURL == "" || c.Auth.ClientID == "" {
			return nil, fmt.Errorf("client_credentials auth needs TokenURL and ClientID")
		}
		if c.Auth.ClientSecretEnv == "" || secret == "" {
			return nil, fmt.Errorf("client_credentials auth needs the environment variable named by ClientSecretEnv (%q) to be set", c.Auth.ClientSecretEnv)
		}
		cc := &clientcredentials.Config{ClientID: c.Auth.ClientID, ClientSecret: secret, TokenURL: c.Auth.TokenURL, Scopes: c.Auth.Scopes}
		// The token request runs outside any call's context; its own
		// client bounds it by the upstream's timeout.
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base, Timeout: c.Timeout})
		transport = &oauth2.Transport{Source: cc.TokenSource(ctx), Base: base}
	case "user":
		// The token is the caller's, fetched per call by api_call.
		if c.Auth.IdentityProvider == "" {
			return nil, fmt.Errorf("user auth needs IdentityProvider")
		}
	default:
		return nil, fmt.Errorf("unknown auth type %q (want none, bearer, client_credentials or user)", c.Auth.Type)
	}
	return &upstream{
		Upstream: c,
		base:     bu,
		client: &http.Client{
			Transport: transport,
			// A redirect could lead off the allowed host or prefixes:
			// hand it back to the caller instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// resolve checks a caller's path (with optional query) against the
// upstream's prefixes and returns the absolute URL to call. It refuses
// absolute URLs, other hosts, dot segments, backslashes and encoded
// slashes or dots.
func (u *upstream) resolve(p string) (*url.URL, error) {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return nil, fmt.Errorf("path %q must be a path starting with a single /, not a URL", p)
	}
	lower := strings.ToLower(p)
	if strings.ContainsAny(p, "\\#") || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%2e") {
		return nil, fmt.Errorf("path %q holds a backslash, a fragment or an encoded slash or dot", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return nil, fmt.Errorf("path %q holds a control character", p)
		}
	}
	pu, err := url.Parse(p)
	if err != nil || pu.Scheme != "" || pu.Host != "" || pu.Opaque != "" {
		return nil, fmt.Errorf("path %q is not a plain path", p)
	}
	if slices.ContainsFunc(strings.Split(pu.Path, "/"), func(seg string) bool { return seg == "." || seg == ".." }) {
		return nil, fmt.Errorf("path %q holds a . or .. segment", p)
	}
	if !slices.ContainsFunc(u.PathPrefixes, func(prefix string) bool { return underPrefix(pu.Path, prefix) }) {
		return nil, fmt.Errorf("path %q is not under an allowed prefix (%s)", pu.Path, strings.Join(u.PathPrefixes, ", "))
	}
	target := *u.base
	target.Path = strings.TrimSuffix(u.base.Path, "/") + pu.Path
	target.RawPath = ""
	target.RawQuery = pu.RawQuery
	return &target, nil
}

// underPrefix reports whether path is prefix or below it, on whole
// segments.
func underPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// upstreamSummary describes the configured upstreams for api_call's
// description.
func (s *Server) upstreamSummary() string {
	if len(s.upstreams) == 0 {
		return "No upstreams are configured."
	}
	names := make([]string, 0, len(s.upstreams))
	for n := range s.upstreams {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		u := s.upstreams[n]
		as := ""
		if u.Auth.Type == "user" {
			as = "; called as you, with your sign-in at identity provider " + u.Auth.IdentityProvider
		}
		parts = append(parts, fmt.Sprintf("%s (methods %s; paths under %s%s)", n, strings.Join(u.Methods, ", "), strings.Join(u.PathPrefixes, ", "), as))
	}
	return "Upstreams: " + strings.Join(parts, "; ") + "."
}
