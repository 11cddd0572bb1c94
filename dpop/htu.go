package dpop

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// htuMatches reports whether a proof's htu names one of urls (RFC 9449
// §4.3, step 9). A byte-for-byte match, what clients send, needs no
// parsing; anything else is compared in normal form.
func htuMatches(htu string, urls []string) bool {
	if slices.Contains(urls, htu) {
		return true
	}
	n, ok := normalizeURL(htu)
	if !ok {
		return false
	}
	return slices.ContainsFunc(urls, func(u string) bool {
		m, ok := normalizeURL(u)
		return ok && m == n
	})
}

// normalizeURL is the form in which htu and the request URL are compared
// (RFC 9449 §4.3, step 9): without query and fragment, with RFC 3986
// syntax- and scheme-based normalization (§6.2.2, §6.2.3): scheme and host
// in lower case (ASCII letters only: no Unicode case folding, under which
// a KELVIN SIGN host would name the k… host), the default port dropped,
// an empty path as "/", percent-encoded unreserved characters decoded,
// other percent-encodings in upper case and kept (an encoded "/" stays
// inside its segment), then dot segments removed. ok is false for
// anything but an absolute http(s) URL with a host and no user
// information.
func normalizeURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := lowerASCII(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := lowerASCII(u.Hostname()), u.Port()
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
	path, ok := normalizePercent(u.EscapedPath())
	if !ok {
		return "", false
	}
	return scheme + "://" + host + removeDotSegments(path), true
}

// lowerASCII lower-cases the ASCII letters of s and nothing else.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// normalizePercent decodes the percent-encoded unreserved characters of an
// escaped path and writes every other percent-encoding in upper case (RFC
// 3986 §6.2.2.1, §6.2.2.2); ok is false for a malformed encoding.
func normalizePercent(p string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", false
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			const digits = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
		i += 2
	}
	return b.String(), true
}

// removeDotSegments removes the "." and ".." segments of an absolute path
// (RFC 3986 §5.2.4); "" becomes "/". Empty segments are kept.
func removeDotSegments(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			continue
		}
		if last { // "/a/." and "/a/b/.." end in a slash
			out = append(out, "")
		}
	}
	return "/" + strings.Join(out, "/")
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
