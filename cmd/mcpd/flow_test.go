package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// htmlForm is a form found in a page: its action, resolved against the
// page URL, and the values its inputs carry.
type htmlForm struct {
	Action string
	Fields url.Values
}

// parseForm returns the first form of an HTML page.
func parseForm(t *testing.T, pageURL string, body []byte) htmlForm {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse page: %v", err)
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		t.Fatalf("no form on page %s:\n%s", pageURL, body)
	}
	attr := func(n *html.Node, k string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val, true
			}
		}
		return "", false
	}
	action, _ := attr(form, "action")
	base, _ := url.Parse(pageURL)
	ref, err := url.Parse(action)
	if err != nil {
		t.Fatalf("form action %q: %v", action, err)
	}
	f := htmlForm{Action: base.ResolveReference(ref).String(), Fields: url.Values{}}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" {
			name, _ := attr(n, "name")
			typ, _ := attr(n, "type")
			val, _ := attr(n, "value")
			_, checked := attr(n, "checked")
			switch {
			case name == "":
			case typ == "checkbox" || typ == "radio":
				if checked {
					f.Fields.Add(name, val)
				}
			default:
				f.Fields.Add(name, val)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(form)
	return f
}

// browser is a cookie-keeping HTTP client that stops at redirects, the way
// a test drives the login and consent pages.
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, hc: &http.Client{Jar: jar, CheckRedirect: noRedirect}}
}

func (b *browser) do(req *http.Request) (*http.Response, []byte) {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (b *browser) get(u string) (*http.Response, []byte) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, []byte) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// authorize walks an authorization request through login (when the browser
// has no session) and consent, and returns the redirect it ends in.
// decision is "allow" or "deny"; scopes, when not nil, replace the checked
// scopes; remember ticks "remember this decision".
func (b *browser) authorize(authURL, user, password, decision string, scopes []string, remember bool) *url.URL {
	b.t.Helper()
	resp, body := b.get(authURL)
	issuer := strings.SplitN(authURL, "/authorize", 2)[0]
	for step := 0; step < 8; step++ {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatalf("redirect without location: %v", err)
			}
			if strings.HasPrefix(loc.String(), issuer+"/") {
				resp, body = b.get(loc.String())
				continue
			}
			return loc
		}
		if resp.StatusCode != http.StatusOK {
			b.t.Fatalf("authorization page: %s\n%s", resp.Status, body)
		}
		pageURL := resp.Request.URL.String()
		f := parseForm(b.t, pageURL, body)
		if _, isLogin := f.Fields["password"]; isLogin {
			f.Fields.Set("username", user)
			f.Fields.Set("password", password)
		} else {
			if scopes != nil {
				f.Fields["scope"] = scopes
			}
			if remember {
				f.Fields.Set("remember", "1")
			}
			f.Fields.Set("action", decision)
		}
		resp, body = b.post(f.Action, f.Fields)
	}
	b.t.Fatalf("authorization did not end in a redirect to the client: %s\n%s", resp.Status, body)
	return nil
}

// registerClient registers a client with a JSON body and returns the
// registration response.
func registerClient(t *testing.T, issuer string, body map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %s %v", resp.Status, out)
	}
	return out
}

// publicClient registers a public loopback client and returns its id.
func publicClient(t *testing.T, issuer, name string) (string, string) {
	t.Helper()
	redirect := "http://127.0.0.1/callback"
	reg := registerClient(t, issuer, map[string]any{
		"client_name": name, "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	return reg["client_id"].(string), redirect
}

// login gets tokens for user through the whole authorization code flow with
// PKCE, as a public client on a random loopback port.
func login(t *testing.T, issuer, clientID, redirect, user, password string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: strings.Replace(redirect, "127.0.0.1", "127.0.0.1:49152", 1),
		Scopes:      scopes,
	}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", issuer+"/mcp"))
	loc := newBrowser(t).authorize(authURL, user, password, "allow", nil, false)
	q := loc.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization ended in %s", loc)
	}
	if got, want := q.Get("iss"), issuer; got != want {
		t.Errorf("iss = %q; want %q", got, want)
	}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", issuer+"/mcp"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// bearerTransport adds a fixed bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
