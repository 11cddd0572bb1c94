package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLogsNeverHoldSecrets(t *testing.T) {
	ts := startServer(t, "--log-level", "debug")
	mustMcpd(t, "very-secret-password\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	reg := registerClient(t, ts.URL, map[string]any{
		"client_name": "confidential", "redirect_uris": []string{"https://app.example/cb"},
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_post",
		"scope": "notes:read",
	})
	secret, _ := reg["client_secret"].(string)
	if secret == "" {
		t.Fatalf("confidential registration returned no secret: %v", reg)
	}
	clientID, redirect := publicClient(t, ts.URL, "log test")
	tok := login(t, ts.URL, clientID, redirect, "alice", "very-secret-password", "notes:read")
	cs := connectMCP(t, ts.URL, tok.AccessToken)
	whoami(t, cs)
	refresh(t, ts.URL, clientID, tok.RefreshToken)
	logs := ts.Stderr.String()
	if !strings.Contains(logs, `"path":"/token"`) {
		t.Fatalf("no access log lines at debug level:\n%.2000s", logs)
	}
	for name, secretValue := range map[string]string{
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"password": "very-secret-password", "client secret": secret,
	} {
		if strings.Contains(logs, secretValue) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if strings.Contains(logs, "code=") || strings.Contains(logs, "ory_ac_") {
		t.Error("the log holds an authorization code")
	}
}

func TestMetrics(t *testing.T) {
	addr := freeAddr(t)
	ts := startServer(t, "--metrics-listen", addr)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "metrics test")
	tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
	cs := connectMCP(t, ts.URL, tok.AccessToken)
	whoami(t, cs)
	mcpStatus(t, ts.URL, "not-a-token")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`mcpd_tokens_issued_total{grant_type="authorization_code"} 1`,
		`mcpd_client_registrations_total{source="dynamic"} 1`,
		`mcpd_token_verifications_total{outcome="unknown"} 1`,
		`mcpd_token_verifications_total{outcome="valid"} `, // one per MCP request
		`mcpd_http_request_duration_seconds_bucket{code="200",method="POST",route="/token"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if resp, err := http.Get(ts.URL + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics is served on the main listener; it belongs on --metrics-listen only")
		}
	}
}
