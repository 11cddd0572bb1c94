package authz

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// corsPolicy lets browser-based clients (MCP Inspector at
// http://localhost:6274) read the metadata and call /register, /token and
// /revoke. Loopback origins on any port and the configured ones are allowed.
type corsPolicy struct {
	origins map[string]bool
}

func newCORSPolicy(extra []string) (*corsPolicy, error) {
	p := &corsPolicy{origins: make(map[string]bool)}
	for _, o := range extra {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("authz: bad CORS origin %q", o)
		}
		p.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

func (p *corsPolicy) allowed(origin string) bool {
	if origin == "" {
		return false
	}
	if p.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

// wrap adds CORS headers for allowed origins and answers preflights.
func (p *corsPolicy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		ok := p.allowed(origin)
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
		}
		if r.Method == http.MethodOptions {
			if ok {
				h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version, DPoP")
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
