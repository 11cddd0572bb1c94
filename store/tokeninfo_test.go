package store_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// infoFromRequest is what LookupAccessToken must answer for a token whose
// request GetAccessTokenSession rebuilds as req.
func infoFromRequest(req fosite.Requester) store.AccessTokenInfo {
	info := store.AccessTokenInfo{
		ClientID:        req.GetClient().GetID(),
		GrantedScopes:   req.GetGrantedScopes(),
		GrantedAudience: req.GetGrantedAudience(),
		Active:          true,
	}
	if sess := req.GetSession(); sess != nil {
		info.Subject = sess.GetSubject()
		info.ExpiresAt = sess.GetExpiresAt(fosite.AccessToken)
		if ds, ok := sess.(*fosite.DefaultSession); ok {
			if cnf, ok := ds.Extra["cnf"].(map[string]any); ok {
				info.JKT, _ = cnf["jkt"].(string)
			}
		}
	}
	return info
}

func TestLookupAccessTokenAgreesWithGetAccessTokenSession(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		req  func() *fosite.Request
	}{{
		name: "authorization code grant of a user",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-1"
			r.RequestedAt = now
			r.Client = &store.Client{ID: "client-a"}
			r.RequestedScope = fosite.Arguments{"notes:read", "notes:write"}
			r.GrantedScope = fosite.Arguments{"notes:read", "notes:write"}
			r.RequestedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
			r.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
			r.Form = url.Values{"resource": {"http://127.0.0.1:8080/mcp"}, "code": {"secret"}, "redirect_uri": {"http://127.0.0.1:33418/"}}
			r.Session = &fosite.DefaultSession{
				Subject:   "alice",
				Username:  "alice",
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour), fosite.RefreshToken: now.Add(24 * time.Hour)},
				Extra:     map[string]interface{}{"nested": map[string]any{"a": []any{"}", "]", "\"{"}}},
			}
			return r
		},
	}, {
		name: "DPoP-bound token: the session's cnf.jkt",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-dpop"
			r.RequestedAt = now
			r.Client = &store.Client{ID: "client-a"}
			r.GrantedScope = fosite.Arguments{"notes:read"}
			r.GrantedAudience = fosite.Arguments{"http://127.0.0.1:8080/mcp"}
			r.Session = &fosite.DefaultSession{
				Subject:   "alice",
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)},
				Extra:     map[string]interface{}{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
			}
			return r
		},
	}, {
		name: "client credentials grant without subject or audience",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-2"
			r.RequestedAt = now
			r.Client = &store.Client{ID: "client-a"}
			r.Session = &fosite.DefaultSession{ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)}}
			return r
		},
	}, {
		name: "strings that encoding/json escapes",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-3"
			r.RequestedAt = now
			r.Client = &store.Client{ID: "https://example.com/client?<&>\"\u2028"}
			r.GrantedScope = fosite.Arguments{"a\"b", `back\slash`, "tab\there", "ünïcödé", "\u2029", ""}
			r.GrantedAudience = fosite.Arguments{"http://x/<mcp>&"}
			r.Form = url.Values{"state": {`{"[`}, "scope": {"a\"b \\"}}
			r.Session = &fosite.DefaultSession{
				Subject:   "bob \"the\" <builder> \u00e9\\",
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Minute)},
			}
			return r
		},
	}, {
		name: "expiry in another zone and empty granted lists",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-4"
			r.RequestedAt = now.In(berlin)
			r.Client = &store.Client{ID: "client-a"}
			r.GrantedScope = fosite.Arguments{}
			r.GrantedAudience = fosite.Arguments{}
			r.Session = &fosite.DefaultSession{
				Subject:   "carol",
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.In(berlin).Add(time.Hour)},
			}
			return r
		},
	}, {
		name: "session without access token expiry",
		req: func() *fosite.Request {
			r := fosite.NewRequest()
			r.ID = "grant-5"
			r.RequestedAt = now
			r.Client = &store.Client{ID: "client-a"}
			r.GrantedScope = fosite.Arguments{"notes:read"}
			r.Session = &fosite.DefaultSession{Subject: "dave"}
			return r
		},
	}}
	ctx := context.Background()
	s, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			if err := s.CreateClient(ctx, &store.Client{ID: req.Client.GetID()}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatal(err)
			}
			sig := "sig-" + req.ID
			if err := s.CreateAccessTokenSession(ctx, sig, req); err != nil {
				t.Fatal(err)
			}
			rebuilt, err := s.GetAccessTokenSession(ctx, sig, &fosite.DefaultSession{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.LookupAccessToken(ctx, sig)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(infoFromRequest(rebuilt), got); diff != "" {
				t.Errorf("LookupAccessToken differs from GetAccessTokenSession (-rebuilt +lookup):\n%s", diff)
			}
			// And from what was stored (the record keeps no empty lists).
			if diff := cmp.Diff(infoFromRequest(req), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("LookupAccessToken differs from the stored request (-stored +lookup):\n%s", diff)
			}
		})
	}
}

func TestLookupAccessTokenNotFound(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	newReq := func(id, client string) *fosite.Request {
		r := fosite.NewRequest()
		r.ID = id
		r.RequestedAt = now
		r.Client = &store.Client{ID: client}
		r.GrantedScope = fosite.Arguments{"notes:read"}
		r.Session = &fosite.DefaultSession{Subject: "alice", ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)}}
		return r
	}
	tests := []struct {
		name string
		kill func(t *testing.T, s *store.Store) // after the token of grant "g" of client "c" was issued
	}{
		{"unknown signature", nil},
		{"deleted token", func(t *testing.T, s *store.Store) {
			if err := s.DeleteAccessTokenSession(ctx, "sig"); err != nil {
				t.Fatal(err)
			}
		}},
		{"revoked grant", func(t *testing.T, s *store.Store) {
			if err := s.RevokeAccessToken(ctx, "g"); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted client", func(t *testing.T, s *store.Store) {
			if err := s.DeleteClient(ctx, "c"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			sig := "other"
			if tt.kill != nil {
				sig = "sig"
				if err := s.CreateClient(ctx, &store.Client{ID: "c"}); err != nil {
					t.Fatal(err)
				}
				if err := s.CreateAccessTokenSession(ctx, sig, newReq("g", "c")); err != nil {
					t.Fatal(err)
				}
				if _, err := s.LookupAccessToken(ctx, sig); err != nil {
					t.Fatalf("LookupAccessToken before: %v", err)
				}
				tt.kill(t, s)
			}
			if _, err := s.LookupAccessToken(ctx, sig); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LookupAccessToken = %v; want ErrNotFound", err)
			}
			if _, err := s.GetAccessTokenSession(ctx, sig, &fosite.DefaultSession{}); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("GetAccessTokenSession = %v; want fosite.ErrNotFound", err)
			}
		})
	}
}
