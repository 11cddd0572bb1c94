package mcp

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// originPolicy decides which Origin and Host header values /mcp accepts,
// the defence against DNS rebinding: a page on a hostile origin, or one
// reached through a hostile name that resolves to this machine, gets 403.
type originPolicy struct {
	origins []string // normalized "scheme://host[:port]"
	hosts   []string // normalized "host[:port]"
	// issuerScheme and issuerPort (the scheme's default when the issuer
	// names none) and whether the issuer's host is a loopback one: which
	// other Host values name the issuer's endpoint (sameEndpoint).
	issuerScheme   string
	issuerPort     string
	issuerLoopback bool
}

func newOriginPolicy(issuer *url.URL, extraOrigins, extraHosts []string) (originPolicy, error) {
	p := originPolicy{
		origins:        []string{normalizeOrigin(issuer.Scheme, issuer.Host)},
		hosts:          []string{normalizeHost(issuer.Scheme, issuer.Host)},
		issuerScheme:   strings.ToLower(issuer.Scheme),
		issuerPort:     portOrDefault(issuer.Scheme, issuer.Host),
		issuerLoopback: isLoopbackHost(issuer.Host),
	}
	for _, o := range extraOrigins {
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return originPolicy{}, fmt.Errorf("mcp: allowed origin %q is not scheme://host[:port]", o)
		}
		p.origins = append(p.origins, normalizeOrigin(u.Scheme, u.Host))
	}
	for _, h := range extraHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return originPolicy{}, fmt.Errorf("mcp: allowed host %q is not host[:port]", h)
		}
		p.hosts = append(p.hosts, strings.ToLower(h))
	}
	return p, nil
}

// normalizeOrigin lower-cases scheme and host and drops the scheme's
// default port.
func normalizeOrigin(scheme, host string) string {
	scheme = strings.ToLower(scheme)
	return scheme + "://" + normalizeHost(scheme, host)
}

func normalizeHost(scheme, host string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			if strings.Contains(h, ":") {
				return "[" + h + "]"
			}
			return h
		}
	}
	return host
}

// isLoopbackHost reports whether hostport names this machine by a loopback
// name or address, on any port.
func isLoopbackHost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(h), "["), "]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostAllowed reports whether a Host header value is the issuer's host, a
// loopback host, or a configured extra.
func (p originPolicy) hostAllowed(host string) bool {
	if isLoopbackHost(host) {
		return true
	}
	host = strings.ToLower(host)
	return slices.Contains(p.hosts, host) || slices.Contains(p.hosts, normalizeHost("http", host)) || slices.Contains(p.hosts, normalizeHost("https", host))
}

// sameEndpoint reports whether a request that came with this (allowed)
// Host header reached the issuer's own endpoint under another name, so a
// DPoP proof's htu may carry that name: the issuer's host, a configured
// extra host, or, for an issuer on a loopback host, another loopback name
// on the issuer's port (127.0.0.1:8080 and localhost:8080). hostAllowed
// lets loopback hosts on any port through, but a proof whose htu names a
// loopback service on another port was made for another server.
func (p originPolicy) sameEndpoint(host string) bool {
	host = strings.ToLower(host)
	if slices.Contains(p.hosts, host) || slices.Contains(p.hosts, normalizeHost(p.issuerScheme, host)) {
		return true
	}
	return p.issuerLoopback && isLoopbackHost(host) && portOrDefault(p.issuerScheme, host) == p.issuerPort
}

// portOrDefault is the port of hostport, or the scheme's default port when
// it names none.
func portOrDefault(scheme, hostport string) string {
	if _, port, err := net.SplitHostPort(hostport); err == nil && port != "" {
		return port
	}
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// originAllowed reports whether an Origin header value is the issuer's
// origin, a loopback origin, or a configured extra. An absent Origin (a
// non-browser client) is allowed; "null" is not.
func (p originPolicy) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if isLoopbackHost(u.Host) {
		return true
	}
	return slices.Contains(p.origins, normalizeOrigin(u.Scheme, u.Host))
}

// checkOrigin refuses a disallowed Host or Origin with 403 before anything
// else runs, and answers CORS for allowed browser origins: a preflight
// gets 204, and responses expose the headers MCP clients read.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.origins.hostAllowed(r.Host) {
			http.Error(w, "forbidden: Host header not allowed", http.StatusForbidden)
			return
		}
		origin := r.Header.Get("Origin")
		if !s.origins.originAllowed(origin) {
			http.Error(w, "forbidden: Origin not allowed", http.StatusForbidden)
			return
		}
		if origin != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate, Mcp-Protocol-Version, DPoP-Nonce")
		}
		if r.Method == http.MethodOptions {
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID, DPoP")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
