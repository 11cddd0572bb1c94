package idptest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// GitHub is a stand-in for github.com's OAuth endpoints (at URL) and its
// REST API (at APIURL): /user, /user/emails and /user/orgs.
type GitHub struct {
	URL          string
	APIURL       string
	ClientID     string
	ClientSecret string

	srv *httptest.Server

	mu     sync.Mutex
	user   User
	faults Faults
	codes  map[string]codeGrant
	tokens map[string]string // access token → subject
	stats  Stats
}

// NewGitHub starts a GitHub stand-in for client id "mcpd-gh", signing in
// user (whose Subject must be a number) on every authorization request.
func NewGitHub(t testing.TB, user User) *GitHub {
	t.Helper()
	g := &GitHub{ClientID: "mcpd-gh", ClientSecret: randomString(), user: user, codes: map[string]codeGrant{}, tokens: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", g.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", g.token)
	mux.HandleFunc("GET /api/v3/user", g.api)
	mux.HandleFunc("GET /api/v3/user/emails", g.api)
	mux.HandleFunc("GET /api/v3/user/orgs", g.api)
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	g.URL = g.srv.URL
	g.APIURL = g.srv.URL + "/api/v3"
	return g
}

// SetUser changes who signs in next.
func (g *GitHub) SetUser(u User) { g.mu.Lock(); g.user = u; g.mu.Unlock() }

// SetFaults replaces the stand-in's faults (AuthError, Delay and
// TokenStatus apply).
func (g *GitHub) SetFaults(f Faults) { g.mu.Lock(); g.faults = f; g.mu.Unlock() }

// Stats returns the counts so far.
func (g *GitHub) Stats() Stats { g.mu.Lock(); defer g.mu.Unlock(); return g.stats }

func (g *GitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Authorizations++
	back, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("client_id") != g.ClientID || err != nil || q.Get("redirect_uri") == "" {
		http.Error(w, "unknown client or bad redirect_uri", http.StatusBadRequest)
		return
	}
	params := url.Values{"state": {q.Get("state")}}
	if g.faults.AuthError != "" {
		params.Set("error", g.faults.AuthError)
	} else {
		code := randomString()
		g.codes[code] = codeGrant{subject: g.user.Subject, redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
		params.Set("code", code)
	}
	back.RawQuery = params.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// token answers like GitHub: 200 with an "error" member for a bad code.
func (g *GitHub) token(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	delay := g.faults.Delay
	g.mu.Unlock()
	if !stall(r, delay) {
		return
	}
	r.ParseForm()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.faults.TokenStatus != 0 {
		oauthError(w, g.faults.TokenStatus, "server_error")
		return
	}
	if r.PostForm.Get("client_id") != g.ClientID || r.PostForm.Get("client_secret") != g.ClientSecret {
		oauthError(w, http.StatusOK, "incorrect_client_credentials")
		return
	}
	g.stats.CodeExchanges++
	c, ok := g.codes[r.PostForm.Get("code")]
	if !ok || c.used || (c.challenge != "" && s256(r.PostForm.Get("code_verifier")) != c.challenge) {
		oauthError(w, http.StatusOK, "bad_verification_code")
		return
	}
	c.used = true
	g.codes[r.PostForm.Get("code")] = c
	tok := "gho_" + randomString()
	g.tokens[tok] = c.subject
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": r.PostForm.Get("scope")})
}

func (g *GitHub) api(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sub, ok := g.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	u := g.user
	id, _ := strconv.ParseInt(sub, 10, 64)
	var out any
	switch r.URL.Path {
	case "/api/v3/user":
		out = map[string]any{"id": id, "login": strings.Split(u.Email, "@")[0], "name": u.Name}
	case "/api/v3/user/emails":
		out = []map[string]any{
			{"email": "noreply-" + sub + "@users.noreply.github.com", "primary": false, "verified": true},
			{"email": u.Email, "primary": true, "verified": u.EmailVerified},
		}
	case "/api/v3/user/orgs":
		orgs := []map[string]string{}
		if r.URL.Query().Get("page") == "1" {
			for _, o := range u.Orgs {
				orgs = append(orgs, map[string]string{"login": o})
			}
		}
		out = orgs
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
