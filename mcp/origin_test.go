package mcp

import (
	"net/http"
	"strings"
	"testing"
)

func TestOriginAndHostChecks(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.AllowedOrigins = []string{"https://inspector.example.com"}
		c.AllowedHosts = []string{"mcp.internal:8443"}
	})
	issuerHost := strings.TrimPrefix(env.ts.URL, "http://")
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
	}{
		{"no Origin (a non-browser client) is allowed", nil, 200},
		{"the issuer's own origin is allowed", map[string]string{"Origin": env.ts.URL}, 200},
		{"a loopback origin on another port is allowed", map[string]string{"Origin": "http://localhost:6274"}, 200},
		{"an IPv6 loopback origin is allowed", map[string]string{"Origin": "http://[::1]:6274"}, 200},
		{"a configured origin is allowed", map[string]string{"Origin": "https://inspector.example.com"}, 200},
		{"a foreign origin gets 403", map[string]string{"Origin": "https://evil.example"}, 403},
		{"a look-alike of a configured origin with another scheme gets 403", map[string]string{"Origin": "http://inspector.example.com"}, 403},
		{"the null origin gets 403", map[string]string{"Origin": "null"}, 403},
		{"the issuer's host is allowed", map[string]string{"Host": issuerHost}, 200},
		{"localhost on any port is allowed", map[string]string{"Host": "localhost:9999"}, 200},
		{"a configured host is allowed", map[string]string{"Host": "mcp.internal:8443"}, 200},
		{"a rebinding host name gets 403", map[string]string{"Host": "evil.example:8080"}, 403},
		{"a foreign host gets 403 before authentication", map[string]string{"Host": "evil.example", "Authorization": ""}, 403},
		{"a foreign origin gets 403 before authentication", map[string]string{"Origin": "https://evil.example", "Authorization": ""}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer alice-all"}
			for k, v := range tt.header {
				h[k] = v
			}
			if h["Authorization"] == "" {
				delete(h, "Authorization")
			}
			resp := env.post(t, initializeBody, h)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d; want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestCORSPreflightForAllowedOrigin(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name       string
		origin     string
		wantStatus int
		wantAllow  string
	}{
		{"a loopback origin's preflight succeeds without a token", "http://localhost:6274", http.StatusNoContent, "http://localhost:6274"},
		{"a foreign origin's preflight gets 403", "https://evil.example", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, env.ts.URL+Path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d; want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q; want %q", got, tt.wantAllow)
			}
			if tt.wantStatus != http.StatusNoContent {
				return
			}
			// What a browser client sends: a 2026-07-28 request carries
			// Mcp-Method and Mcp-Name, which the server requires; a DPoP
			// client its proof; a 2025 client its session.
			allowed := map[string]bool{}
			for _, h := range strings.Split(resp.Header.Get("Access-Control-Allow-Headers"), ",") {
				allowed[strings.ToLower(strings.TrimSpace(h))] = true
			}
			for _, h := range []string{"Authorization", "Content-Type", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Mcp-Session-Id", "DPoP", "Last-Event-ID"} {
				if !allowed[strings.ToLower(h)] {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", resp.Header.Get("Access-Control-Allow-Headers"), h)
				}
			}
		})
	}
}
