package authz

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpd/mcpd/web"
)

type whoami struct {
	User     string   `json:"user"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// TestGoSDKClient runs the go-sdk's own OAuth client against the server:
// discovery → registration → PKCE → token → MCP call → refresh. The MCP
// endpoint here is a stand-in for the mcp package: RequireBearerToken with
// Verify, plus protected-resource metadata.
func TestGoSDKClient(t *testing.T) {
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer ts.Close()
	store := newMemStore()
	rend, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Issuer:       ts.URL,
		Storage:      store,
		Renderer:     rend,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		GlobalSecret: []byte("0123456789abcdef0123456789abcdef-test"),
		Scopes:       testScopes,
		RefreshGrace: time.Minute,
		// Shorter than oauth2's 10 s expiry margin: every call refreshes.
		AccessTokenLifespan: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var refreshes atomic.Int32
	r := mux.NewRouter()
	srv.Register(r)
	prmURL := ts.URL + "/.well-known/oauth-protected-resource/mcp"
	r.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               srv.ResourceURL(),
		AuthorizationServers:   []string{ts.URL},
		ScopesSupported:        []string{"notes:read", "notes:write", "api:call"},
		BearerMethodsSupported: []string{"header"},
	}))
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoami, error) {
		ti := req.Extra.TokenInfo
		id, _ := ti.Extra["client_id"].(string)
		return nil, whoami{User: ti.UserID, ClientID: id, Scopes: ti.Scopes}, nil
	})
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	r.Handle("/mcp", auth.RequireBearerToken(srv.Verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: prmURL})(mcpHandler))
	h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			_ = req.ParseForm()
			if req.PostForm.Get("grant_type") == "refresh_token" {
				refreshes.Add(1)
			}
		}
		r.ServeHTTP(w, req)
	})

	e := &env{t: t, srv: srv, ts: ts, store: store}
	b := e.browser()
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		p := b.get(args.URL)
		if isLoginPage(p) {
			p = b.login(t, p, "alice", "correct horse")
		}
		if isConsentPage(p) {
			p = b.decide(t, p, "allow", []string{"notes:read", "notes:write", "api:call"}, false)
		}
		if p.status != http.StatusSeeOther {
			return nil, errors.New("authorization did not redirect")
		}
		q := p.location(t).Query()
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "go-sdk test",
			RedirectURIs:            []string{"http://127.0.0.1:8765/callback"},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			TokenEndpointAuthMethod: "none",
		}},
		AuthorizationCodeFetcher: fetch,
		RequestRefreshToken:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	for i := range 2 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got, _ := res.StructuredContent.(map[string]any)
		if diff := cmp.Diff("alice", got["user"]); diff != "" {
			t.Errorf("call %d user (-want +got):\n%s", i, diff)
		}
	}
	if refreshes.Load() == 0 {
		t.Errorf("the client never refreshed its token")
	}
}
