package authz

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/ory/fosite"
)

// tokenInfoOf is the TokenInfo Verify returned when it rebuilt the token's
// fosite request (GetAccessTokenSession); Verify must still return it.
func tokenInfoOf(req fosite.Requester) *auth.TokenInfo {
	return &auth.TokenInfo{
		UserID:     req.GetSession().GetSubject(),
		Scopes:     slices.Clone(req.GetGrantedScopes()),
		Expiration: req.GetSession().GetExpiresAt(fosite.AccessToken),
		Extra:      map[string]any{"client_id": req.GetClient().GetID()},
	}
}

func TestVerifyReturnsTheGrant(t *testing.T) {
	e := newEnv(t, nil)
	pub := e.registerPublic("http://127.0.0.1/cb")
	code := e.codeFlow(e.browser(), pub.ClientID, "http://127.0.0.1:8000/cb", "notes:read notes:write")
	conf := e.registerConfidential("notes:read")
	_, cc, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, conf.ClientID, conf.ClientSecret)
	ctx := context.Background()
	for _, tt := range []struct{ name, token string }{
		{"an authorization code grant's token yields its user, scopes, expiry and client", code.AccessToken},
		{"a client credentials token yields its client as the user", cc["access_token"].(string)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := e.store.GetAccessTokenSession(ctx, e.srv.strategy.AccessTokenSignature(ctx, tt.token), &fosite.DefaultSession{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.srv.Verify(ctx, tt.token, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tokenInfoOf(req), got); diff != "" {
				t.Errorf("TokenInfo (-rebuilt request +Verify):\n%s", diff)
			}
			if got.Expiration.IsZero() {
				t.Errorf("Expiration is zero; want the token's expiry")
			}
		})
	}
}

func TestVerifyOutcomes(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		change  func(*fosite.Request) // the request before it is stored
		after   func(e *env, req *fosite.Request, token string) string
		outcome string
	}{
		{name: "a live token for the MCP resource is valid", outcome: outcomeValid},
		{
			name:    "a token past its expiry is expired",
			change:  func(r *fosite.Request) { r.Session.SetExpiresAt(fosite.AccessToken, r.RequestedAt.Add(-time.Second)) },
			outcome: outcomeExpired,
		},
		{
			name: "a token at its expiry is expired",
			after: func(e *env, req *fosite.Request, token string) string {
				e.clock.Advance(req.Session.GetExpiresAt(fosite.AccessToken).Sub(e.clock.Now()))
				return token
			},
			outcome: outcomeExpired,
		},
		{
			name:    "a token without an expiry is expired",
			change:  func(r *fosite.Request) { r.Session.(*fosite.DefaultSession).ExpiresAt = nil },
			outcome: outcomeExpired,
		},
		{
			name:    "a token for another audience is refused",
			change:  func(r *fosite.Request) { r.GrantedAudience = fosite.Arguments{"http://elsewhere/mcp"} },
			outcome: outcomeWrongAudience,
		},
		{
			name:    "a token without an audience is refused",
			change:  func(r *fosite.Request) { r.GrantedAudience = nil },
			outcome: outcomeWrongAudience,
		},
		{
			name: "a revoked token is unknown at its next use",
			after: func(e *env, req *fosite.Request, token string) string {
				if err := e.store.RevokeAccessToken(ctx, req.ID); err != nil {
					e.t.Fatal(err)
				}
				return token
			},
			outcome: outcomeUnknown,
		},
		{
			name: "a token of a deleted client is unknown",
			after: func(e *env, req *fosite.Request, token string) string {
				if err := e.store.DeleteClient(ctx, req.Client.GetID()); err != nil {
					e.t.Fatal(err)
				}
				return token
			},
			outcome: outcomeUnknown,
		},
		{
			name: "a token whose key part was not minted with our key is rejected",
			after: func(_ *env, _ *fosite.Request, token string) string {
				// The signature part still finds the record.
				return "ory_at_" + "AAAA" + token[len("ory_at_")+4:]
			},
			outcome: outcomeUnknown,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obs := &countingObserver{counts: map[string]int{}}
			e := newEnv(t, func(c *Config) { c.Observer = obs })
			token, req := mintAccessToken(e, tt.change)
			if tt.after != nil {
				token = tt.after(e, req, token)
			}
			info, err := e.srv.Verify(ctx, token, nil)
			if tt.outcome == outcomeValid {
				if err != nil {
					t.Fatalf("Verify = %v; want no error", err)
				}
				if diff := cmp.Diff(tokenInfoOf(req), info); diff != "" {
					t.Errorf("TokenInfo (-stored +Verify):\n%s", diff)
				}
			} else if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Verify = %v; want ErrInvalidToken", err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if diff := cmp.Diff(map[string]int{"verified:" + tt.outcome: 1}, obs.counts); diff != "" {
				t.Errorf("observer counts (-want +got):\n%s", diff)
			}
		})
	}
}

// mintAccessToken stores an access token of a new grant of a new client,
// as the token endpoint would, after change (if not nil) altered the
// request, and returns the token and the stored request.
func mintAccessToken(e *env, change func(*fosite.Request)) (string, *fosite.Request) {
	e.t.Helper()
	ctx := context.Background()
	client := &Client{ID: "client-" + randomToken(8), TokenEndpointAuthMethod: "none", Source: SourceDynamic}
	if err := e.store.CreateClient(ctx, client); err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now().UTC().Round(time.Second)
	req := fosite.NewRequest()
	req.ID = "grant-" + randomToken(8)
	req.RequestedAt = now
	req.Client = client
	req.GrantedScope = fosite.Arguments{"notes:read"}
	req.GrantedAudience = fosite.Arguments{e.srv.ResourceURL()}
	req.Session = &fosite.DefaultSession{
		Subject:   "alice",
		ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)},
	}
	if change != nil {
		change(req)
	}
	token, sig, err := e.srv.strategy.GenerateAccessToken(ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAccessTokenSession(ctx, sig, req); err != nil {
		e.t.Fatal(err)
	}
	return token, req
}
