package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// connectMCP opens an MCP session with a fixed bearer token, over
// connections of its own (see refresh for why not http.DefaultTransport).
func connectMCP(t *testing.T, issuer, token string) *mcp.ClientSession {
	t.Helper()
	base := &http.Transport{}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpd-test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   issuer + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{token: token, base: base}},
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		cs.Close()
		base.CloseIdleConnections()
	})
	return cs
}

// whoami calls the whoami tool and returns its structured result.
func whoami(t *testing.T, cs *mcp.ClientSession) map[string]any {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if res.IsError {
		t.Fatalf("whoami tool error: %+v", res.Content)
	}
	m, _ := res.StructuredContent.(map[string]any)
	return m
}

// mcpStatus posts an initialize request with a token and returns the status
// and WWW-Authenticate header.
func mcpStatus(t *testing.T, issuer, token string) (int, string) {
	t.Helper()
	resp := postMCP(t, issuer, initializeBody, http.Header{"Authorization": {"Bearer " + token}})
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestClientRevokeEndsEveryToken(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "Revoked Client")
	tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read", "notes:write")
	cs := connectMCP(t, ts.URL, tok.AccessToken)
	if got := whoami(t, cs); got["user"] != "alice" || got["client_id"] != clientID {
		t.Fatalf("whoami = %v; want alice via %s", got, clientID)
	}
	out := mustMcpd(t, "", "client", "revoke", clientID, "--data", ts.Data)
	if !strings.Contains(out, "ended 1 grants") {
		t.Errorf("client revoke printed %q", out)
	}
	status, challenge := mcpStatus(t, ts.URL, tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("after revoke: %d %q; want 401 with invalid_token", status, challenge)
	}
	cfg := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
	if _, err := cfg.TokenSource(context.Background(), expired).Token(); err == nil {
		t.Error("refresh after revoke succeeded")
	}
	if _, _, err := mcpd(t, "", "client", "show", clientID, "--data", ts.Data); err == nil {
		t.Error("revoked client still shown")
	}
}

func TestGoSDKClientFullFlow(t *testing.T) {
	ts := startServer(t, "--access-token-ttl", "2s")
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	var authorizations int
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "go-sdk test",
			RedirectURIs:            []string{"http://127.0.0.1:53682/callback"},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
		}},
		RedirectURL: "http://127.0.0.1:53682/callback",
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			authorizations++
			loc := newBrowser(t).authorize(args.URL, "alice", "alice-pw", "allow", nil, false)
			q := loc.Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect through discovery, registration and authorization: %v", err)
	}
	defer cs.Close()
	// The go-sdk client asks for 2026-07-28 first (server/discover); the
	// default server answers it statelessly.
	if got := cs.InitializeResult().ProtocolVersion; got != "2026-07-28" {
		t.Errorf("negotiated protocol version = %q; want 2026-07-28", got)
	}
	if cs.ID() != "" {
		t.Errorf("session id %q; a 2026-07-28 client has none", cs.ID())
	}
	if got := whoami(t, cs); got["user"] != "alice" {
		t.Fatalf("whoami = %v", got)
	}
	src, err := handler.TokenSource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first.Expiry) + 200*time.Millisecond)
	if got := whoami(t, cs); got["user"] != "alice" {
		t.Fatalf("whoami after expiry = %v", got)
	}
	second, _ := src.Token()
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Error("the access token expired but no refresh rotated the tokens")
	}
	if authorizations != 1 {
		t.Errorf("%d browser authorizations; want 1 (the refresh needs none)", authorizations)
	}

	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "go-sdk", "body": "round trip"}})
	if err != nil || res.IsError {
		t.Fatalf("note_save: %v %+v", err, res)
	}
	id := res.StructuredContent.(map[string]any)["id"].(string)
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_get", Arguments: map[string]any{"id": id}})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["body"] != "round trip" {
		t.Fatalf("note_get: %v %+v", err, res)
	}

	// Revoking the client ends its tokens: the access token gets 401 and
	// the refresh token is refused with invalid_client, which the go-sdk
	// surfaces as an error of the next call.
	oldClient := whoami(t, cs)["client_id"].(string)
	current, _ := src.Token()
	mustMcpd(t, "", "client", "revoke", oldClient, "--data", ts.Data)
	if status, _ := mcpStatus(t, ts.URL, current.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("revoked client's access token: %d; want 401", status)
	}
	time.Sleep(time.Until(current.Expiry) + 200*time.Millisecond)
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("call after revoke: %v; want the refresh refused with invalid_client", err)
	}
}

func TestGoSDKClientEachProtocolEra(t *testing.T) {
	tests := []struct {
		name        string
		serveArgs   []string
		ask         string // ClientSessionOptions.ProtocolVersion
		wantVersion string
		wantSession bool
	}{
		{"the default server serves 2026-07-28 without a session", nil, "2026-07-28", "2026-07-28", false},
		{"the default server gives a 2025-11-25 client a session", nil, "2025-11-25", "2025-11-25", true},
		{"the default server gives a 2025-03-26 client a session", nil, "2025-03-26", "2025-03-26", true},
		{"--mcp-stateless true serves 2026-07-28 as the default does", []string{"--mcp-stateless", "true"}, "2026-07-28", "2026-07-28", false},
		{"--mcp-stateless true gives a 2025-11-25 client no session", []string{"--mcp-stateless", "true"}, "2025-11-25", "2025-11-25", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.serveArgs...)
			mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
			clientID, redirect := publicClient(t, ts.URL, "Era Client")
			tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read", "notes:write")
			client := mcp.NewClient(&mcp.Implementation{Name: "mcpd-test", Version: "1"}, nil)
			cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
				Endpoint:   ts.URL + "/mcp",
				HTTPClient: &http.Client{Transport: bearerTransport{token: tok.AccessToken}},
			}, &mcp.ClientSessionOptions{ProtocolVersion: tt.ask})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != tt.wantVersion {
				t.Errorf("negotiated protocol version = %q; want %q", got, tt.wantVersion)
			}
			if got := cs.ID() != ""; got != tt.wantSession {
				t.Errorf("has a session = %v (id %q); want %v", got, cs.ID(), tt.wantSession)
			}
			if got := whoami(t, cs); got["user"] != "alice" || got["client_id"] != clientID {
				t.Fatalf("whoami = %v; want alice via %s", got, clientID)
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": tt.ask, "body": "era"}})
			if err != nil || res.IsError {
				t.Fatalf("note_save: %v %+v", err, res)
			}
		})
	}
}

func TestNotesAcrossRestart(t *testing.T) {
	data := t.TempDir()
	listen := freeAddr(t) // the issuer, and so the token audience, must stay the same
	ts := startServer(t, "--data", data, "--listen", listen)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", data)
	clientID, redirect := publicClient(t, ts.URL, "Restart Client")
	tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read", "notes:write")
	cs := connectMCP(t, ts.URL, tok.AccessToken)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{"title": "kept", "body": "across restarts"}})
	if err != nil || res.IsError {
		t.Fatalf("note_save: %v %+v", err, res)
	}
	id := res.StructuredContent.(map[string]any)["id"].(string)
	cs.Close()
	ts.Stop(t)

	// Same data directory, new process: the grant and the note survive.
	ts2 := startServer(t, "--data", data, "--listen", listen)
	tok2 := refresh(t, ts2.URL, clientID, tok.RefreshToken)
	cs2 := connectMCP(t, ts2.URL, tok2.AccessToken)
	res, err = cs2.CallTool(context.Background(), &mcp.CallToolParams{Name: "note_get", Arguments: map[string]any{"id": id}})
	if err != nil || res.IsError {
		t.Fatalf("note_get after restart: %v %+v", err, res)
	}
	if got := res.StructuredContent.(map[string]any)["body"]; got != "across restarts" {
		t.Errorf("body = %v", got)
	}
}

// refresh redeems a refresh token at issuer.
//
// It uses a client of its own: a POST is never retried on a reused
// connection, and http.DefaultTransport may still hold one to an earlier
// server on the same address (TestNotesAcrossRestart restarts mcpd there),
// which then fails with EOF.
func refresh(t *testing.T, issuer, clientID, refreshToken string) *oauth2.Token {
	t.Helper()
	cfg := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return tok
}
