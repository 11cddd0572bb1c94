package oidc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
	"github.com/mcpd/mcpd/idp/oidc"
	"github.com/mcpd/mcpd/internal/idptest"
)

const callback = "http://127.0.0.1:8080/login/idp/corp/callback"

var ada = idptest.User{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}

func newConnector(t *testing.T, p *idptest.OIDC, hc *http.Client) *oidc.Connector {
	t.Helper()
	c, err := oidc.New(oidc.Config{Issuer: p.URL, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: []string{"email", "offline_access"}, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newRequest() idp.Request {
	return idp.Request{State: "state-" + oauth2.GenerateVerifier()[:10], Nonce: "nonce-" + oauth2.GenerateVerifier()[:10], CodeVerifier: oauth2.GenerateVerifier()}
}

// signIn follows the authorization URL like a browser would and returns
// the callback's query.
func signIn(t *testing.T, c *oidc.Connector, r idp.Request) url.Values {
	t.Helper()
	authURL, err := c.AuthCodeURL(context.Background(), callback, r)
	if err != nil {
		t.Fatalf("AuthCodeURL: %v", err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorization answered %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	return loc.Query()
}

func TestAuthCodeURL(t *testing.T) {
	p := idptest.NewOIDC(t, ada)
	c := newConnector(t, p, nil)
	r := newRequest()
	u, err := c.AuthCodeURL(context.Background(), callback, r)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	q := pu.Query()
	want := map[string]string{
		"client_id": p.ClientID, "redirect_uri": callback, "response_type": "code", "state": r.State, "nonce": r.Nonce,
		"code_challenge": oauth2.S256ChallengeFromVerifier(r.CodeVerifier), "code_challenge_method": "S256",
		"scope": "openid email offline_access",
	}
	got := map[string]string{}
	for k := range want {
		got[k] = q.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("authorization URL parameters (-want +got):\n%s", diff)
	}
	if pu.Scheme+"://"+pu.Host+pu.Path != p.URL+"/auth" {
		t.Errorf("authorization URL %s is not the discovered endpoint", u)
	}
	if q.Has("code_verifier") {
		t.Error("the PKCE verifier left the server")
	}
}

func TestExchange(t *testing.T) {
	tests := []struct {
		name   string
		faults idptest.Faults
		user   idptest.User
		want   idp.Identity
	}{
		{"a verified email is taken from the ID token", idptest.Faults{}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}},
		{"email_verified false leaves the email unverified", idptest.Faults{}, idptest.User{Subject: "bob", Email: "bob@example.com"},
			idp.Identity{Subject: "bob", Email: "bob@example.com"}},
		{"email_verified sent as a string is honoured", idptest.Faults{StringVerified: true}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}},
		{"no email_verified claim means unverified", idptest.Faults{NoEmailVerified: true}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", Name: "Ada Lovelace"}},
		{"Entra's xms_edov stands for email_verified when that is absent", idptest.Faults{NoEmailVerified: true, EmailDomainOwner: true}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}},
		{"several audiences with azp naming this client pass", idptest.Faults{ExtraAudience: "https://api.example", AuthorizedParty: "mcpd"}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}},
		{"claims missing from the ID token are read from userinfo", idptest.Faults{EmailOnlyInfo: true}, ada,
			idp.Identity{Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada Lovelace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := idptest.NewOIDC(t, tt.user)
			p.SetFaults(tt.faults)
			c := newConnector(t, p, nil)
			r := newRequest()
			q := signIn(t, c, r)
			if q.Get("state") != r.State {
				t.Fatalf("state came back as %q; want %q", q.Get("state"), r.State)
			}
			id, tok, err := c.Exchange(context.Background(), callback, q.Get("code"), r)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			tt.want.Issuer = p.URL
			if diff := cmp.Diff(tt.want, id); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if sub, ok := p.ActiveSubject(tok.AccessToken); !ok || sub != tt.user.Subject || tok.RefreshToken == "" {
				t.Errorf("upstream token %+v is not a live token of %s with a refresh token", tok, tt.user.Subject)
			}
		})
	}
}

func TestExchangeFailures(t *testing.T) {
	tests := []struct {
		name    string
		faults  idptest.Faults
		tamper  func(r *idp.Request, code *string)
		want    error
		timeout bool
	}{
		{"an ID token of another issuer is unverifiable", idptest.Faults{Issuer: "https://evil.example"}, nil, idp.ErrUnverifiable, false},
		{"an ID token for another audience is unverifiable", idptest.Faults{Audience: "someone-else"}, nil, idp.ErrUnverifiable, false},
		{"an ID token issued to another client (azp) is unverifiable", idptest.Faults{AuthorizedParty: "someone-else"}, nil, idp.ErrUnverifiable, false},
		{"an ID token for several audiences without azp is unverifiable", idptest.Faults{ExtraAudience: "someone-else"}, nil, idp.ErrUnverifiable, false},
		{"an ID token for several audiences issued to another client is unverifiable", idptest.Faults{ExtraAudience: "someone-else", AuthorizedParty: "someone-else"}, nil, idp.ErrUnverifiable, false},
		{"an ID token with another nonce is unverifiable", idptest.Faults{Nonce: "replayed-nonce"}, nil, idp.ErrUnverifiable, false},
		{"an expired ID token is unverifiable", idptest.Faults{ExpiredIDToken: true}, nil, idp.ErrUnverifiable, false},
		{"a wrong PKCE verifier is rejected", idptest.Faults{}, func(r *idp.Request, _ *string) { r.CodeVerifier = oauth2.GenerateVerifier() }, idp.ErrRejected, false},
		{"an unknown code is rejected", idptest.Faults{}, func(_ *idp.Request, code *string) { *code = "made-up" }, idp.ErrRejected, false},
		{"a token endpoint failing with 503 is unavailable", idptest.Faults{TokenStatus: http.StatusServiceUnavailable}, nil, idp.ErrUnavailable, false},
		{"a token endpoint slower than the client's timeout is unavailable", idptest.Faults{Delay: 2 * time.Second}, nil, idp.ErrUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := idptest.NewOIDC(t, ada)
			c := newConnector(t, p, &http.Client{Timeout: 300 * time.Millisecond})
			r := newRequest()
			code := signIn(t, c, r).Get("code")
			p.SetFaults(tt.faults)
			if tt.tamper != nil {
				tt.tamper(&r, &code)
			}
			_, tok, err := c.Exchange(context.Background(), callback, code, r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Exchange: got %v; want %v", err, tt.want)
			}
			if tok != nil {
				t.Errorf("a failed exchange returned a token")
			}
			if tt.timeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a timeout is not recognisable: %v", err)
			}
		})
	}

	t.Run("a code used once is rejected the second time", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		c := newConnector(t, p, nil)
		r := newRequest()
		code := signIn(t, c, r).Get("code")
		if _, _, err := c.Exchange(context.Background(), callback, code, r); err != nil {
			t.Fatalf("first exchange: %v", err)
		}
		if _, _, err := c.Exchange(context.Background(), callback, code, r); !errors.Is(err, idp.ErrRejected) {
			t.Errorf("replayed code: got %v; want ErrRejected", err)
		}
	})

	t.Run("a provider that is down is unavailable, and New does not need it", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		p.Close()
		c := newConnector(t, p, nil)
		if _, err := c.AuthCodeURL(context.Background(), callback, newRequest()); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("AuthCodeURL with the provider down: got %v; want ErrUnavailable", err)
		}
	})

	t.Run("a discovery document of another issuer is unverifiable", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		c, err := oidc.New(oidc.Config{Issuer: p.URL + "/", ClientID: p.ClientID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AuthCodeURL(context.Background(), callback, newRequest()); !errors.Is(err, idp.ErrUnverifiable) {
			t.Errorf("AuthCodeURL with an issuer mismatch: got %v; want ErrUnverifiable", err)
		}
	})
}

func TestRefresh(t *testing.T) {
	p := idptest.NewOIDC(t, ada)
	c := newConnector(t, p, nil)
	r := newRequest()
	_, tok, err := c.Exchange(context.Background(), callback, signIn(t, c, r).Get("code"), r)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a refresh token yields a new live access token", func(t *testing.T) {
		nt, err := c.Refresh(context.Background(), tok)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if nt.AccessToken == tok.AccessToken || nt.RefreshToken == "" {
			t.Errorf("refreshed token %+v is not new or lacks a refresh token", nt)
		}
		if _, ok := p.ActiveSubject(nt.AccessToken); !ok {
			t.Error("the refreshed access token is not live at the provider")
		}
		tok = nt
	})

	t.Run("a revoked grant is rejected", func(t *testing.T) {
		p.RevokeRefreshTokens()
		if _, err := c.Refresh(context.Background(), tok); !errors.Is(err, idp.ErrRejected) {
			t.Errorf("Refresh after revocation: got %v; want ErrRejected", err)
		}
	})

	t.Run("no refresh token is rejected without asking the provider", func(t *testing.T) {
		before := p.Stats().Refreshes
		if _, err := c.Refresh(context.Background(), &oauth2.Token{AccessToken: "x"}); !errors.Is(err, idp.ErrRejected) {
			t.Errorf("Refresh without a refresh token: got %v; want ErrRejected", err)
		}
		if p.Stats().Refreshes != before {
			t.Error("the provider was asked anyway")
		}
	})

	t.Run("a provider down while refreshing is unavailable", func(t *testing.T) {
		p.SetFaults(idptest.Faults{TokenStatus: http.StatusBadGateway})
		if _, err := c.Refresh(context.Background(), &oauth2.Token{RefreshToken: "whatever"}); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("Refresh with the provider failing: got %v; want ErrUnavailable", err)
		}
	})
}

func TestHostileProvider(t *testing.T) {
	t.Run("a discovery document past the size limit is refused, not read whole", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		p.SetFaults(idptest.Faults{Oversized: "discovery"})
		if _, err := newConnector(t, p, nil).AuthCodeURL(context.Background(), callback, newRequest()); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("AuthCodeURL: got %v; want ErrUnavailable", err)
		}
	})

	for _, answer := range []string{"keys", "userinfo"} {
		t.Run("a "+answer+" answer past the size limit fails the sign-in", func(t *testing.T) {
			p := idptest.NewOIDC(t, ada)
			c := newConnector(t, p, nil)
			r := newRequest()
			code := signIn(t, c, r).Get("code")
			p.SetFaults(idptest.Faults{Oversized: answer, EmailOnlyInfo: true})
			id, tok, err := c.Exchange(context.Background(), callback, code, r)
			if err == nil || tok != nil || id.Subject != "" {
				t.Errorf("Exchange = %+v, %v, %v; want a failure", id, tok, err)
			}
		})
	}

	t.Run("the body of a failed userinfo answer, echoing the access token, stays out of the error", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		c := newConnector(t, p, nil)
		r := newRequest()
		code := signIn(t, c, r).Get("code")
		p.SetFaults(idptest.Faults{EmailOnlyInfo: true, UserinfoEcho: true})
		_, _, err := c.Exchange(context.Background(), callback, code, r)
		if !errors.Is(err, idp.ErrUnavailable) {
			t.Fatalf("Exchange: got %v; want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "Bearer") || strings.Contains(err.Error(), "Authorization") {
			t.Errorf("the error holds the provider's body with the token: %v", err)
		}
	})
}

func TestResponseIssuer(t *testing.T) {
	for _, promised := range []bool{false, true} {
		t.Run(fmt.Sprintf("the issuer, and whether discovery promises iss (%v)", promised), func(t *testing.T) {
			p := idptest.NewOIDC(t, ada)
			p.SetFaults(idptest.Faults{IssParameter: promised})
			c := newConnector(t, p, nil)
			iss, required, err := c.ResponseIssuer(context.Background())
			if err != nil || iss != p.URL || required != promised {
				t.Errorf("ResponseIssuer = %q, %v, %v; want %q, %v", iss, required, err, p.URL, promised)
			}
			if promised {
				if got := signIn(t, c, newRequest()).Get("iss"); got != p.URL {
					t.Errorf("the provider's answer carries iss %q; want %q", got, p.URL)
				}
			}
		})
	}

	t.Run("a provider that is down is unavailable", func(t *testing.T) {
		p := idptest.NewOIDC(t, ada)
		p.Close()
		if _, _, err := newConnector(t, p, nil).ResponseIssuer(context.Background()); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("got %v; want ErrUnavailable", err)
		}
	})
}

func TestDiscoveryOverTLS(t *testing.T) {
	for _, tt := range []struct {
		name     string
		endpoint string // a path on the TLS server, or an absolute http URL
		want     error
	}{
		{"https endpoints are used", "/token", nil},
		{"an https issuer naming a plain http token endpoint is refused", "http://provider.example/token", idp.ErrUnverifiable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				token := tt.endpoint
				if strings.HasPrefix(token, "/") {
					token = srv.URL + token
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"jwks_uri":%q,"userinfo_endpoint":%q,`+
					`"response_types_supported":["code"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}`,
					srv.URL, srv.URL+"/auth", token, srv.URL+"/keys", srv.URL+"/userinfo")
			}))
			t.Cleanup(srv.Close)
			c, err := oidc.New(oidc.Config{Issuer: srv.URL, ClientID: "mcpd", HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.AuthCodeURL(context.Background(), callback, newRequest()); !errors.Is(err, tt.want) {
				t.Errorf("AuthCodeURL: got %v; want %v", err, tt.want)
			}
		})
	}
}
