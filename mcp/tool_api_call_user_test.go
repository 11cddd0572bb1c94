package mcp

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// userTokens is a UserTokens in memory: user → provider → token.
type userTokens struct {
	mu     sync.Mutex
	tokens map[string]string // user + "/" + provider → token
	err    error             // returned instead, when set
	asked  []string
}

func (u *userTokens) UpstreamAccessToken(_ context.Context, user, provider string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked = append(u.asked, user+"/"+provider)
	if u.err != nil {
		return "", u.err
	}
	tok, ok := u.tokens[user+"/"+provider]
	if !ok {
		return "", ErrSignInRequired
	}
	return tok, nil
}

func TestAPICallAsTheUser(t *testing.T) {
	tokens := &userTokens{tokens: map[string]string{"alice/corp": "alice-at-corp"}}
	api := &upstreamAPI{ok: func(tok string) bool { return tok == "alice-at-corp" }}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	env := newTestEnv(t, func(c *Config) {
		c.UserTokens = tokens
		c.Upstreams = []Upstream{{
			Name: "corp-api", BaseURL: apiSrv.URL, PathPrefixes: []string{"/v1"},
			Auth: UpstreamAuth{Type: "user", IdentityProvider: "corp"},
		}}
	})

	t.Run("the upstream gets the caller's own token at the provider, not the MCP token", func(t *testing.T) {
		var out apiCallOut
		if msg := callTool(t, env.connect(t, "alice-all"), "api_call", map[string]any{"upstream": "corp-api", "method": "GET", "path": "/v1/echo"}, &out); msg != "" || out.Status != 200 {
			t.Fatalf("api_call: %q status %d", msg, out.Status)
		}
		if diff := cmp.Diff([]string{"Bearer alice-at-corp"}, api.authorizations()); diff != "" {
			t.Errorf("upstream Authorization (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"alice/corp"}, tokens.asked); diff != "" {
			t.Errorf("tokens asked for (-want +got):\n%s", diff)
		}
	})

	t.Run("a user without a sign-in at the provider is told to sign in with it again, and the upstream is not called", func(t *testing.T) {
		before := len(api.authorizations())
		msg := callTool(t, env.connect(t, "bob-all"), "api_call", map[string]any{"upstream": "corp-api", "method": "GET", "path": "/v1/echo"}, nil)
		for _, want := range []string{`Sign in with "corp" again`, env.ts.URL + "/login/idp/corp"} {
			if !strings.Contains(msg, want) {
				t.Errorf("tool error = %q; want it to contain %q", msg, want)
			}
		}
		if len(api.authorizations()) != before {
			t.Error("the upstream was called without a token")
		}
	})

	t.Run("a client_credentials token has no user to act as", func(t *testing.T) {
		msg := callTool(t, env.connect(t, "machine-api"), "api_call", map[string]any{"upstream": "corp-api", "method": "GET", "path": "/v1/echo"}, nil)
		if !strings.Contains(msg, "client_credentials token has no user") {
			t.Errorf("tool error = %q", msg)
		}
	})

	t.Run("a provider that cannot renew the token is a passing error that leaks nothing", func(t *testing.T) {
		tokens.mu.Lock()
		tokens.err = errors.New("refresh at corp: dial tcp: connection refused; refresh_token=rt-secret")
		tokens.mu.Unlock()
		msg := callTool(t, env.connect(t, "alice-all"), "api_call", map[string]any{"upstream": "corp-api", "method": "GET", "path": "/v1/echo"}, nil)
		if !strings.Contains(msg, "could not be renewed just now; try again later") || strings.Contains(msg, "rt-secret") {
			t.Errorf("tool error = %q", msg)
		}
	})

	t.Run("an upstream of auth type user needs UserTokens and a provider", func(t *testing.T) {
		for _, c := range []struct {
			cfg  Config
			want string
		}{
			{Config{Upstreams: []Upstream{{Name: "u", BaseURL: "https://api.example", Auth: UpstreamAuth{Type: "user", IdentityProvider: "corp"}}}}, "needs Config.UserTokens"},
			{Config{UserTokens: tokens, Upstreams: []Upstream{{Name: "u", BaseURL: "https://api.example", Auth: UpstreamAuth{Type: "user"}}}}, "needs IdentityProvider"},
		} {
			c.cfg.Issuer, c.cfg.Verifier, c.cfg.Notes = "http://127.0.0.1:8080", fakeVerifier, newMemNotes()
			if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: got %v; want an error containing %q", err, c.want)
			}
		}
	})
}
