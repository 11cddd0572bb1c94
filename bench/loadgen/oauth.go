package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/html"
)

// The OAuth side of the load: the client registrations, authorizations and
// token requests a real client makes, over plain HTTP.

const redirectURI = "http://127.0.0.1/callback"

// tokenResponse is the part of a token response the scenarios use.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// postForm posts form to path and decodes a JSON answer into out; any
// status but want is an error carrying the body.
func (e *runEnv) postForm(ctx context.Context, path string, form url.Values, basicID, basicSecret string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.target+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return e.doJSON(req, want, out)
}

func (e *runEnv) postJSON(ctx context.Context, path string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.target+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return e.doJSON(req, want, out)
}

func (e *runEnv) doJSON(req *http.Request, want int, out any) error {
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.200s", req.Method, req.URL.Path, resp.Status, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// registerPublic registers a public authorization-code client.
func (e *runEnv) registerPublic(ctx context.Context, name string) (string, error) {
	var reg struct {
		ClientID string `json:"client_id"`
	}
	err := e.postJSON(ctx, "/register", map[string]any{
		"client_name": name, "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	}, http.StatusCreated, &reg)
	return reg.ClientID, err
}

// registerConfidential registers a client_credentials client.
func (e *runEnv) registerConfidential(ctx context.Context, name string) (id, secret string, err error) {
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	err = e.postJSON(ctx, "/register", map[string]any{
		"client_name": name, "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read notes:write",
	}, http.StatusCreated, &reg)
	return reg.ClientID, reg.ClientSecret, err
}

// clientCredentialsToken asks for an access token of the confidential
// client id for scope (client_credentials grant).
func (e *runEnv) clientCredentialsToken(ctx context.Context, id, secret, scope string) (string, error) {
	var tok tokenResponse
	err := e.postForm(ctx, "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, id, secret, http.StatusOK, &tok)
	return tok.AccessToken, err
}

// authorizer walks authorization requests through the login and consent
// pages with one cookie jar, so only the first one logs in.
type authorizer struct {
	env *runEnv
	hc  *http.Client
	mu  sync.Mutex
}

func newAuthorizer(env *runEnv) *authorizer {
	jar, _ := cookiejar.New(nil)
	return &authorizer{env: env, hc: &http.Client{Jar: jar, Transport: env.hc.Transport, CheckRedirect: env.hc.CheckRedirect}}
}

// grant runs one authorization code flow with PKCE for clientID and
// exchanges the code.
func (a *authorizer) grant(ctx context.Context, clientID string) (*tokenResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	redirect := strings.Replace(redirectURI, "127.0.0.1", "127.0.0.1:49152", 1)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"scope":                 {"notes:read notes:write"},
		"state":                 {randomString(12)},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"resource":              {a.env.target + "/mcp"},
	}
	next := a.env.target + "/authorize?" + q.Encode()
	var form url.Values
	method := http.MethodGet
	for range 8 {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next, body)
		if err != nil {
			return nil, err
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := a.hc.Do(req)
		if err != nil {
			return nil, err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
			loc, err := resp.Location()
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(loc.String(), a.env.target+"/") {
				code := loc.Query().Get("code")
				if code == "" {
					return nil, fmt.Errorf("authorization ended in %s", loc.Redacted())
				}
				var tok tokenResponse
				form := url.Values{
					"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
					"client_id": {clientID}, "code_verifier": {verifier}, "resource": {a.env.target + "/mcp"},
				}
				if a.env.dpop != nil { // a *-dpop scenario: bind the grant to the key
					proof, err := a.env.dpop.sign(http.MethodPost, a.env.target+"/token", "")
					if err != nil {
						return nil, err
					}
					err = a.env.postFormDPoP(ctx, "/token", form, "", "", proof, http.StatusOK, &tok)
					return &tok, err
				}
				err := a.env.postForm(ctx, "/token", form, "", "", http.StatusOK, &tok)
				return &tok, err
			}
			next, method = loc.String(), http.MethodGet
		case resp.StatusCode == http.StatusOK:
			action, fields, err := firstForm(resp.Request.URL, page)
			if err != nil {
				return nil, err
			}
			if _, isLogin := fields["password"]; isLogin {
				fields.Set("username", a.env.user)
				fields.Set("password", a.env.password)
			} else {
				fields.Set("remember", "1")
				fields.Set("action", "allow")
			}
			next, method, form = action, http.MethodPost, fields
		default:
			return nil, fmt.Errorf("authorization page: %s: %.200s", resp.Status, page)
		}
	}
	return nil, errors.New("authorization did not end in a redirect to the client")
}

// firstForm returns the action (resolved against base) and the input
// values of the first form of an HTML page.
func firstForm(base *url.URL, page []byte) (string, url.Values, error) {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return "", nil, err
	}
	attr := func(n *html.Node, k string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val, true
			}
		}
		return "", false
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
		return "", nil, fmt.Errorf("no form on page %s: %.200s", base.Redacted(), page)
	}
	fields := url.Values{}
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
					fields.Add(name, val)
				}
			default:
				fields.Add(name, val)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(form)
	action, _ := attr(form, "action")
	ref, err := url.Parse(action)
	if err != nil {
		return "", nil, err
	}
	return base.ResolveReference(ref).String(), fields, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// prepareShared does the one-time setup of a run: an access token for the
// MCP scenarios and a confidential client for the token scenarios.
func (e *runEnv) prepareShared(ctx context.Context, needToken, needConfidential bool) error {
	e.once.Do(func() {
		if needToken {
			id, err := e.registerPublic(ctx, "loadgen")
			if err != nil {
				e.onceErr = err
				return
			}
			tok, err := e.browser.grant(ctx, id)
			if err != nil {
				e.onceErr = err
				return
			}
			e.token, e.tokenType = tok.AccessToken, tok.TokenType
		}
		if needConfidential {
			e.ccID, e.ccSecret, e.onceErr = e.registerConfidential(ctx, "loadgen-cc")
		}
	})
	return e.onceErr
}

// refreshScenario gives each worker a grant of its own and rotates its
// refresh token over and over: every request is one durable rotation.
func refreshScenario(ctx context.Context, env *runEnv, _ int) (op, error) {
	id, err := env.registerPublic(ctx, "loadgen-refresh")
	if err != nil {
		return nil, err
	}
	tok, err := env.browser.grant(ctx, id)
	if err != nil {
		return nil, err
	}
	rt := tok.RefreshToken
	if rt == "" {
		return nil, errors.New("no refresh token issued")
	}
	return func(ctx context.Context) error {
		var next tokenResponse
		err := env.postForm(ctx, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {id}}, "", "", http.StatusOK, &next)
		if err != nil {
			return err
		}
		if next.RefreshToken == "" {
			return errors.New("refresh answered without a refresh token")
		}
		rt = next.RefreshToken
		return nil
	}, nil
}

// clientCredentialsScenario asks /token for client_credentials tokens.
func clientCredentialsScenario(ctx context.Context, env *runEnv, _ int) (op, error) {
	if err := env.prepareShared(ctx, false, true); err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes:read"}}
	return func(ctx context.Context) error {
		var tok tokenResponse
		if err := env.postForm(ctx, "/token", form, env.ccID, env.ccSecret, http.StatusOK, &tok); err != nil {
			return err
		}
		if tok.AccessToken == "" {
			return errors.New("no access token")
		}
		return nil
	}, nil
}

// introspectScenario introspects one live access token per worker.
func introspectScenario(ctx context.Context, env *runEnv, _ int) (op, error) {
	if err := env.prepareShared(ctx, false, true); err != nil {
		return nil, err
	}
	token, err := env.clientCredentialsToken(ctx, env.ccID, env.ccSecret, "notes:read")
	if err != nil {
		return nil, err
	}
	form := url.Values{"token": {token}}
	return func(ctx context.Context) error {
		var out struct {
			Active bool `json:"active"`
		}
		if err := env.postForm(ctx, "/introspect", form, env.ccID, env.ccSecret, http.StatusOK, &out); err != nil {
			return err
		}
		if !out.Active {
			return errors.New("token reported inactive")
		}
		return nil
	}, nil
}

// registerScenario registers public clients (the server needs raised
// --registrations-per-minute and --max-clients).
func registerScenario(_ context.Context, env *runEnv, i int) (op, error) {
	n := 0
	return func(ctx context.Context) error {
		n++
		_, err := env.registerPublic(ctx, fmt.Sprintf("loadgen-%d-%d", i, n))
		return err
	}, nil
}
