package authz

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/web"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testScopes = []Scope{
	{Name: "notes:read", Description: "Read your notes"},
	{Name: "notes:write", Description: "Create, change and delete your notes"},
	{Name: "api:call", Description: "Call the upstream APIs the operator set up"},
}

// env is one authorization server over httptest with its store and clock.
type env struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	store  *memStore
	clock  *clock
	router *mux.Router // tests may add routes before the first request
}

// newEnv starts a server; mod may change the Config before New.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, "", mod)
}

// newEnvAt starts a server whose issuer, and every URL the test uses,
// names host ("" for 127.0.0.1) instead of the loopback address, as
// passkeys need (browsers refuse them on an IP address).
func newEnvAt(t testing.TB, host string, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: newMemStore(), clock: &clock{t: time.Now()}}
	e.store.now = e.clock.Now
	var h http.Handler
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.ts.Close)
	if host != "" {
		e.ts.URL = strings.Replace(e.ts.URL, "127.0.0.1", host, 1)
	}
	cfg := testConfig(t, e.ts.URL, e.store, e.clock)
	rend := cfg.Renderer
	if mod != nil {
		mod(&cfg)
	}
	var err error
	if u, perr := url.Parse(cfg.Issuer); perr == nil && cfg.Renderer == rend && u.Path != rend.BasePath() {
		// An issuer with a path: pages load their files under it.
		if cfg.Renderer, err = web.New(web.WithBasePath(u.Path)); err != nil {
			t.Fatal(err)
		}
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.router = mux.NewRouter()
	e.srv.Register(e.router)
	h = e.router
	return e
}

// testConfig is the Config of a test server at issuer.
func testConfig(t testing.TB, issuer string, st Storage, clk *clock) Config {
	t.Helper()
	rend, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Issuer:                  issuer,
		Storage:                 st,
		Renderer:                rend,
		Logger:                  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:                     clk.Now,
		GlobalSecret:            []byte("0123456789abcdef0123456789abcdef-test"),
		Scopes:                  testScopes,
		RefreshGrace:            60 * time.Second,
		ClientMetadataDocuments: true,
	}
}

func (e *env) url(path string) string { return e.ts.URL + path }

// postJSON posts v as JSON and decodes the answer into out (if not nil).
func (e *env) postJSON(path string, body string, out any) *http.Response {
	e.t.Helper()
	resp, err := http.Post(e.url(path), "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("decoding %s answer %q: %v", path, b, err)
		}
	}
	return resp
}

type regResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
	ApplicationType         string   `json:"application_type"`
	RegistrationAccessToken string   `json:"registration_access_token"`
	RegistrationClientURI   string   `json:"registration_client_uri"`
	Error                   string   `json:"error"`
	ErrorDescription        string   `json:"error_description"`
}

// register registers a client and fails the test unless it is created.
func (e *env) register(body string) regResponse {
	e.t.Helper()
	var rr regResponse
	resp := e.postJSON("/register", body, &rr)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: status %d (%s: %s); want 201", resp.StatusCode, rr.Error, rr.ErrorDescription)
	}
	return rr
}

func (e *env) registerPublic(redirects ...string) regResponse {
	b, _ := json.Marshal(map[string]any{
		"client_name":                "Test Client",
		"redirect_uris":              redirects,
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	})
	return e.register(string(b))
}

func (e *env) registerConfidential(scope string) regResponse {
	b, _ := json.Marshal(map[string]any{
		"client_name":                "Backend",
		"token_endpoint_auth_method": "client_secret_basic",
		"grant_types":                []string{"client_credentials"},
		"scope":                      scope,
	})
	return e.register(string(b))
}

// browser is a cookie-keeping user agent that does not follow redirects.
type browser struct {
	t  testing.TB
	hc *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, hc: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is a fetched response with its body read.
type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location(t testing.TB) *url.URL {
	t.Helper()
	loc := p.header.Get("Location")
	if loc == "" {
		t.Fatalf("no Location; status %d body %.300s", p.status, p.body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var inputTag = regexp.MustCompile(`<input\b[^>]*>`)
var attr = regexp.MustCompile(`\b(name|value)="([^"]*)"`)

// hiddenField returns the value of the input named name in html.
func hiddenField(t testing.TB, html, name string) string {
	t.Helper()
	for _, tag := range inputTag.FindAllString(html, -1) {
		var n, v string
		for _, m := range attr.FindAllStringSubmatch(tag, -1) {
			if m[1] == "name" {
				n = m[2]
			} else {
				v = m[2]
			}
		}
		if n == name {
			return strings.ReplaceAll(v, "&amp;", "&")
		}
	}
	t.Fatalf("no input %q in page: %.500s", name, html)
	return ""
}

func isLoginPage(p page) bool { return strings.Contains(p.body, `name="password"`) }
func isConsentPage(p page) bool {
	return strings.Contains(p.body, `name="action"`) && strings.Contains(p.body, `value="allow"`)
}

// authRequest builds an authorization request URL with PKCE S256.
type authRequest struct {
	clientID, redirect, scope, state, verifier string
	extra                                      url.Values
}

func (e *env) authorizeURL(a authRequest) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {a.clientID},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(a.verifier)},
		"code_challenge_method": {"S256"},
	}
	if a.redirect != "" {
		q.Set("redirect_uri", a.redirect)
	}
	if a.scope != "" {
		q.Set("scope", a.scope)
	}
	if a.state != "" {
		q.Set("state", a.state)
	}
	for k, vs := range a.extra {
		q[k] = vs
	}
	return e.url("/authorize?" + q.Encode())
}

// login submits the login page p and returns the page after the redirect
// back to /authorize.
func (b *browser) login(t testing.TB, p page, user, password string) page {
	t.Helper()
	if !isLoginPage(p) {
		t.Fatalf("want login page; got status %d: %.300s", p.status, p.body)
	}
	resp := b.post(actionOf(t, p.body), url.Values{
		"csrf_token": {hiddenField(t, p.body, "csrf_token")},
		"request_id": {hiddenField(t, p.body, "request_id")},
		"username":   {user},
		"password":   {password},
	})
	if resp.status != http.StatusSeeOther {
		t.Fatalf("login: status %d; want 303: %.300s", resp.status, resp.body)
	}
	return b.get(resp.location(t).String())
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)

func actionOf(t testing.TB, html string) string {
	t.Helper()
	m := formAction.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no form in page: %.300s", html)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// decide submits the consent page p with action and the checked scopes.
func (b *browser) decide(t testing.TB, p page, action string, scopes []string, remember bool) page {
	t.Helper()
	if !isConsentPage(p) {
		t.Fatalf("want consent page; got status %d: %.300s", p.status, p.body)
	}
	form := url.Values{
		"csrf_token": {hiddenField(t, p.body, "csrf_token")},
		"request_id": {hiddenField(t, p.body, "request_id")},
		"action":     {action},
		"scope":      scopes,
	}
	if remember {
		form.Set("remember", "1")
	}
	return b.post(actionOf(t, p.body), form)
}

// oauthConfig is a golang.org/x/oauth2 client of e.
func (e *env) oauthConfig(clientID, secret, redirect string, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURL:  redirect,
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.url("/authorize"),
			TokenURL:  e.url("/token"),
			AuthStyle: style,
		},
	}
}

// authorize runs login + consent (allow, every requested scope) and returns
// the redirect back to the client.
func (e *env) authorize(b *browser, a authRequest) *url.URL {
	e.t.Helper()
	p := b.get(e.authorizeURL(a))
	if isLoginPage(p) {
		p = b.login(e.t, p, "alice", "correct horse")
	}
	if isConsentPage(p) {
		p = b.decide(e.t, p, "allow", strings.Fields(a.scope), false)
	}
	if p.status != http.StatusSeeOther {
		e.t.Fatalf("authorize: status %d; want 303: %.300s", p.status, p.body)
	}
	return p.location(e.t)
}

// tokenRequest posts a form to /token and returns status and decoded JSON.
func (e *env) tokenRequest(form url.Values, basicID, basicSecret string) (int, map[string]any, http.Header) {
	e.t.Helper()
	return e.dpopToken(form, basicID, basicSecret)
}

// codeFlow registers nothing: it authorizes client for scope and exchanges
// the code, returning the token.
func (e *env) codeFlow(b *browser, clientID, redirect, scope string) *oauth2.Token {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	loc := e.authorize(b, authRequest{clientID: clientID, redirect: redirect, scope: scope, verifier: v, state: "state-123456"})
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	tok, err := e.oauthConfig(clientID, "", redirect, oauth2.AuthStyleInParams).Exchange(context.Background(), code, oauth2.VerifierOption(v))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

func (e *env) refresh(clientID, refreshToken string) (int, map[string]any) {
	e.t.Helper()
	st, out, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID}}, "", "")
	return st, out
}

func (e *env) verify(token string) error {
	_, err := e.srv.Verify(context.Background(), token, nil)
	return err
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
