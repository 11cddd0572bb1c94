package dpop

import (
	"net"
	"net/url"
	"strings"
)

// normalizeURL is the form in which htu and the request URL are compared
// (RFC 9449 §4.3, step 9): without query and fragment, with RFC 3986
// syntax- and scheme-based normalization: lower-case scheme and host, the
// default port dropped, an empty path as "/", dot segments removed and
// percent-encoding in one canonical form. ok is false for anything but an
// absolute http(s) URL with a host and no user information.
func normalizeURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", false
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" || strings.Contains(host, ":") {
		host = net.JoinHostPort(host, port)
		host = strings.TrimSuffix(host, ":") // an IPv6 literal without port
	}
	// Resolving against a base removes dot segments (RFC 3986 §5.2.4);
	// EscapedPath re-encodes the decoded path canonically.
	p := (&url.URL{Path: "/"}).ResolveReference(&url.URL{Path: u.Path})
	path := p.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}
