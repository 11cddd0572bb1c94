package dpop

import (
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://MCPD.example:443/mcp?q#f": "https://mcpd.example/mcp",
		"http://127.0.0.1:80":              "http://127.0.0.1/",
		"http://[::1]:8080/token":          "http://[::1]:8080/token",
		"https://[::1]:443/token":          "https://[::1]/token",
		"https://h/a/./b/../c":             "https://h/a/c",
		"https://h/a/..":                   "https://h/",
		"https://h/a/.":                    "https://h/a/",
		"https://h//token":                 "https://h//token",
		"https://h/%7e%2fx":                "https://h/~%2Fx",
		"https://h/a%2F..%2Fb":             "https://h/a%2F..%2Fb",
		"https://\u212Aelvin.example/":     "https://\u212Aelvin.example/",
	} {
		got, ok := normalizeURL(raw)
		if !ok || got != want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{"/mcp", "ftp://h/x", "https://u@h/x", "https:opaque", "https://h/%zz", "https://h/%4"} {
		if got, ok := normalizeURL(raw); ok {
			t.Errorf("normalizeURL(%q) = %q; want refused", raw, got)
		}
	}
}

// FuzzNormalizeURL checks the normal form of an htu: normalizing it again
// changes nothing, it has neither query nor fragment, and it starts with
// the lower-case scheme.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{"https://mcpd.example/mcp", "HTTP://LOCALHOST:80/a/../b?x#y", "https://h/%2e%2E/%2f", "http://[::1]:443/", "https://h:/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, ok := normalizeURL(raw)
		if !ok {
			return
		}
		if !strings.HasPrefix(n, "http://") && !strings.HasPrefix(n, "https://") {
			t.Fatalf("normalizeURL(%q) = %q: not an http(s) URL", raw, n)
		}
		if strings.ContainsAny(n, "?#") {
			t.Fatalf("normalizeURL(%q) = %q keeps a query or fragment", raw, n)
		}
		again, ok := normalizeURL(n)
		if !ok || again != n {
			t.Fatalf("normalizeURL(%q) = %q, but normalizing that gives %q, %v", raw, n, again, ok)
		}
	})
}
