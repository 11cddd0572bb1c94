package github_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
	"github.com/mcpd/mcpd/idp/github"
	"github.com/mcpd/mcpd/internal/idptest"
)

const callback = "http://127.0.0.1:8080/login/idp/gh/callback"

func newConnector(t *testing.T, g *idptest.GitHub, fetchOrgs bool, hc *http.Client) *github.Connector {
	t.Helper()
	c, err := github.New(github.Config{ClientID: g.ClientID, ClientSecret: g.ClientSecret, BaseURL: g.URL, APIURL: g.APIURL, FetchOrgs: fetchOrgs, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func signIn(t *testing.T, c *github.Connector, r idp.Request) url.Values {
	t.Helper()
	authURL, err := c.AuthCodeURL(context.Background(), callback, r)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return loc.Query()
}

func newRequest() idp.Request {
	return idp.Request{State: "state-123456", CodeVerifier: oauth2.GenerateVerifier()}
}

func TestGitHub(t *testing.T) {
	octo := idptest.User{Subject: "583231", Email: "octo@example.com", EmailVerified: true, Name: "The Octocat", Orgs: []string{"acme", "github"}}

	t.Run("the authorization URL asks for the scopes, with state and an S256 challenge", func(t *testing.T) {
		g := idptest.NewGitHub(t, octo)
		r := newRequest()
		u, _ := newConnector(t, g, true, nil).AuthCodeURL(context.Background(), callback, r)
		pu, _ := url.Parse(u)
		q := pu.Query()
		got := map[string]string{"path": pu.Path, "scope": q.Get("scope"), "state": q.Get("state"), "code_challenge_method": q.Get("code_challenge_method"), "redirect_uri": q.Get("redirect_uri")}
		want := map[string]string{"path": "/login/oauth/authorize", "scope": "read:user user:email read:org", "state": r.State, "code_challenge_method": "S256", "redirect_uri": callback}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("authorization URL (-want +got):\n%s", diff)
		}
	})

	t.Run("sign-in yields the numeric id, the verified primary email and the orgs", func(t *testing.T) {
		g := idptest.NewGitHub(t, octo)
		c := newConnector(t, g, true, nil)
		r := newRequest()
		id, tok, err := c.Exchange(context.Background(), callback, signIn(t, c, r).Get("code"), r)
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		want := idp.Identity{Issuer: g.URL, Subject: "583231", Email: "octo@example.com", EmailVerified: true, Name: "octo", Orgs: []string{"acme", "github"}}
		if diff := cmp.Diff(want, id); diff != "" {
			t.Errorf("identity (-want +got):\n%s", diff)
		}
		if tok.AccessToken == "" {
			t.Error("no upstream token")
		}
	})

	t.Run("orgs are not read unless asked for", func(t *testing.T) {
		g := idptest.NewGitHub(t, octo)
		c := newConnector(t, g, false, nil)
		r := newRequest()
		id, _, err := c.Exchange(context.Background(), callback, signIn(t, c, r).Get("code"), r)
		if err != nil || id.Orgs != nil {
			t.Errorf("Exchange = %+v, %v; want no orgs", id, err)
		}
	})

	t.Run("an unverified primary email stays unverified", func(t *testing.T) {
		u := octo
		u.EmailVerified = false
		g := idptest.NewGitHub(t, u)
		c := newConnector(t, g, false, nil)
		r := newRequest()
		id, _, err := c.Exchange(context.Background(), callback, signIn(t, c, r).Get("code"), r)
		if err != nil || id.EmailVerified || id.Email != "octo@example.com" {
			t.Errorf("Exchange = %+v, %v; want the email unverified", id, err)
		}
	})

	t.Run("a replayed code or wrong verifier is rejected (GitHub answers 200 with an error)", func(t *testing.T) {
		g := idptest.NewGitHub(t, octo)
		c := newConnector(t, g, false, nil)
		r := newRequest()
		code := signIn(t, c, r).Get("code")
		wrong := r
		wrong.CodeVerifier = oauth2.GenerateVerifier()
		if _, _, err := c.Exchange(context.Background(), callback, code, wrong); !errors.Is(err, idp.ErrRejected) {
			t.Errorf("wrong verifier: got %v; want ErrRejected", err)
		}
		code = signIn(t, c, r).Get("code")
		if _, _, err := c.Exchange(context.Background(), callback, code, r); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Exchange(context.Background(), callback, code, r); !errors.Is(err, idp.ErrRejected) {
			t.Errorf("replayed code: got %v; want ErrRejected", err)
		}
	})

	t.Run("GitHub slow or failing is unavailable", func(t *testing.T) {
		g := idptest.NewGitHub(t, octo)
		c := newConnector(t, g, false, &http.Client{Timeout: 300 * time.Millisecond})
		r := newRequest()
		code := signIn(t, c, r).Get("code")
		g.SetFaults(idptest.Faults{Delay: 2 * time.Second})
		if _, _, err := c.Exchange(context.Background(), callback, code, r); !errors.Is(err, idp.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("slow GitHub: got %v; want ErrUnavailable with a deadline", err)
		}
		g.SetFaults(idptest.Faults{TokenStatus: http.StatusBadGateway})
		if _, _, err := c.Exchange(context.Background(), callback, code, r); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("failing GitHub: got %v; want ErrUnavailable", err)
		}
	})
}
