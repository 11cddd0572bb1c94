package idptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
)

// User is a person at a stand-in provider.
type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Orgs          []string // GitHub only
}

// OIDC is a stand-in OpenID provider on an httptest server. Its exported
// fields may be changed between requests (they are read under its lock
// through the setter methods).
type OIDC struct {
	URL          string // the issuer
	ClientID     string
	ClientSecret string

	srv  *httptest.Server
	key  *rsa.PrivateKey
	keys *oidctest.Server

	mu     sync.Mutex
	user   User
	faults Faults
	codes  map[string]codeGrant
	access map[string]tokenInfo // access token → who and until when
	rtoks  map[string]string    // refresh token → subject
	stats  Stats
	issued []string // every code, token and ID token handed out
}

// Faults make the provider misbehave; the zero value behaves.
type Faults struct {
	AuthError        string        // /authorize answers with this error
	Delay            time.Duration // every token request waits this long first
	TokenStatus      int           // /token answers this status with TokenErrorCode
	TokenErrorCode   string        // the error code of TokenStatus; "" → server_error
	Issuer           string        // the ID token's iss, if set
	Audience         string        // the ID token's aud, if set
	Nonce            string        // the ID token's nonce, if set
	ExtraAudience    string        // a second aud next to the client's, if set
	AuthorizedParty  string        // the ID token's azp, if set
	EmailOnlyInfo    bool          // email claims only at /userinfo
	NoRefreshToken   bool          // token responses carry no refresh token
	RefuseRefresh    bool          // every refresh is invalid_grant
	AccessTokenTTL   time.Duration // expires_in of access tokens; 0 → 1h
	ExpiredIDToken   bool          // the ID token expired an hour ago
	StringVerified   bool          // email_verified sent as the string "true"/"false"
	NoEmailVerified  bool          // no email_verified claim at all
	EmailDomainOwner bool          // Entra's xms_edov claim, true
	// IssParameter advertises authorization_response_iss_parameter_supported
	// and sends iss in every authorization response (RFC 9207);
	// ResponseIss sends that iss instead of the provider's.
	IssParameter bool
	ResponseIss  string
	// Oversized pads one answer ("discovery", "keys" or "userinfo") with
	// OversizedBytes of white space: still valid JSON, only too long.
	Oversized string
	// UserinfoEcho makes userinfo fail with 500 and a body that echoes
	// the request's Authorization header, as a debugging proxy might.
	UserinfoEcho bool
}

// OversizedBytes is the padding of Faults.Oversized: twice the 1 MiB
// mcpd reads of any answer.
const OversizedBytes = 2 << 20

// Stats counts what the provider was asked.
type Stats struct {
	Authorizations int
	CodeExchanges  int
	Refreshes      int
}

type codeGrant struct {
	subject, redirect, challenge, nonce string
	used                                bool
}

type tokenInfo struct {
	subject string
	expires time.Time
}

// NewOIDC starts a stand-in provider for client id "mcpd" with a random
// secret, signing in user on every authorization request.
func NewOIDC(t testing.TB, user User) *OIDC {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &OIDC{
		ClientID: "mcpd", ClientSecret: randomString(),
		key: key, user: user,
		codes: map[string]codeGrant{}, access: map[string]tokenInfo{}, rtoks: map[string]string{},
	}
	p.keys = &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: "RS256"}}}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/openid-configuration", http.HandlerFunc(p.discovery))
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.pad(w, "keys")
		p.keys.ServeHTTP(w, r)
	})
	mux.HandleFunc("/auth", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.HandleFunc("/userinfo", p.userinfo)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	p.keys.SetIssuer(p.URL)
	return p
}

// SetUser changes who signs in next.
func (p *OIDC) SetUser(u User) { p.mu.Lock(); p.user = u; p.mu.Unlock() }

// SetFaults replaces the provider's faults.
func (p *OIDC) SetFaults(f Faults) { p.mu.Lock(); p.faults = f; p.mu.Unlock() }

// Stats returns the counts so far.
func (p *OIDC) Stats() Stats { p.mu.Lock(); defer p.mu.Unlock(); return p.stats }

// Issued returns every secret the provider handed out so far: codes,
// access and refresh tokens, ID tokens; a test looks for them where they
// must not be (logs, the database, pages).
func (p *OIDC) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{p.ClientSecret}, p.issued...)
}

// Close stops the provider: from then on it does not answer.
func (p *OIDC) Close() { p.srv.Close() }

// ActiveSubject returns the subject of a live access token, for a test API
// that trusts only this provider's tokens.
func (p *OIDC) ActiveSubject(accessToken string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ti, ok := p.access[accessToken]
	if !ok || !time.Now().Before(ti.expires) {
		return "", false
	}
	return ti.subject, true
}

// ExpireAccessTokens ends every access token issued so far, as if their
// lifetime had passed.
func (p *OIDC) ExpireAccessTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, ti := range p.access {
		ti.expires = time.Now().Add(-time.Second)
		p.access[k] = ti
	}
}

// RevokeRefreshTokens ends every refresh token issued so far.
func (p *OIDC) RevokeRefreshTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.rtoks)
}

// pad writes the padding of Faults.Oversized when it names answer.
func (p *OIDC) pad(w http.ResponseWriter, answer string) {
	p.mu.Lock()
	on := p.faults.Oversized == answer
	p.mu.Unlock()
	if on {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(strings.Repeat(" ", OversizedBytes)))
	}
}

func (p *OIDC) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	p.pad(w, "discovery")
	p.mu.Lock()
	iss := p.faults.IssParameter
	p.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{
		"authorization_response_iss_parameter_supported": iss,
		"issuer":                                p.URL,
		"authorization_endpoint":                p.URL + "/auth",
		"token_endpoint":                        p.URL + "/token",
		"userinfo_endpoint":                     p.URL + "/userinfo",
		"jwks_uri":                              p.URL + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

// authorize signs the current user in at once and sends the browser back
// with a code, or with the configured error.
func (p *OIDC) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Authorizations++
	redirect := q.Get("redirect_uri")
	if q.Get("client_id") != p.ClientID || redirect == "" {
		http.Error(w, "unknown client or no redirect_uri", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	params := url.Values{"state": {q.Get("state")}}
	if p.faults.IssParameter {
		params.Set("iss", p.URL)
	}
	if p.faults.ResponseIss != "" {
		params.Set("iss", p.faults.ResponseIss)
	}
	if p.faults.AuthError != "" {
		params.Set("error", p.faults.AuthError)
		params.Set("error_description", "the stand-in provider was told to refuse")
	} else {
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "PKCE S256 required", http.StatusBadRequest)
			return
		}
		code := randomString()
		p.codes[code] = codeGrant{subject: p.user.Subject, redirect: redirect, challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
		params.Set("code", code)
		p.issued = append(p.issued, code)
	}
	back.RawQuery = params.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// stall waits d before a token answer (Faults.Delay) and reports false
// when the client gave up first.
func stall(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

func (p *OIDC) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	delay := p.faults.Delay
	p.mu.Unlock()
	if !stall(r, delay) {
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.faults.TokenStatus != 0 {
		code := p.faults.TokenErrorCode
		if code == "" {
			code = "server_error"
		}
		oauthError(w, p.faults.TokenStatus, code)
		return
	}
	if id != p.ClientID || secret != p.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		p.stats.CodeExchanges++
		g, ok := p.codes[r.PostForm.Get("code")]
		if !ok || g.used || g.redirect != r.PostForm.Get("redirect_uri") || s256(r.PostForm.Get("code_verifier")) != g.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.used = true
		p.codes[r.PostForm.Get("code")] = g
		p.issue(w, g.subject, g.nonce, true)
	case "refresh_token":
		p.stats.Refreshes++
		sub, ok := p.rtoks[r.PostForm.Get("refresh_token")]
		if !ok || p.faults.RefuseRefresh {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(p.rtoks, r.PostForm.Get("refresh_token"))
		p.issue(w, sub, "", false)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue writes a token response for sub; with an ID token on code
// exchange. p.mu is held.
func (p *OIDC) issue(w http.ResponseWriter, sub, nonce string, withID bool) {
	ttl := p.faults.AccessTokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	access := randomString()
	p.access[access] = tokenInfo{subject: sub, expires: time.Now().Add(ttl)}
	p.issued = append(p.issued, access)
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(ttl / time.Second)}
	if !p.faults.NoRefreshToken {
		rt := randomString()
		p.rtoks[rt] = sub
		p.issued = append(p.issued, rt)
		resp["refresh_token"] = rt
	}
	if withID {
		now := time.Now()
		claims := map[string]any{
			"iss": p.URL, "aud": p.ClientID, "sub": sub, "nonce": nonce,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}
		if p.faults.Issuer != "" {
			claims["iss"] = p.faults.Issuer
		}
		if p.faults.Audience != "" {
			claims["aud"] = p.faults.Audience
		}
		if p.faults.ExtraAudience != "" {
			claims["aud"] = []string{p.ClientID, p.faults.ExtraAudience}
		}
		if p.faults.AuthorizedParty != "" {
			claims["azp"] = p.faults.AuthorizedParty
		}
		if p.faults.Nonce != "" {
			claims["nonce"] = p.faults.Nonce
		}
		if p.faults.ExpiredIDToken {
			claims["exp"] = now.Add(-time.Hour).Unix()
		}
		if !p.faults.EmailOnlyInfo {
			p.userClaims(claims)
		}
		raw, _ := json.Marshal(claims)
		resp["id_token"] = oidctest.SignIDToken(p.key, "k1", "RS256", string(raw))
		p.issued = append(p.issued, resp["id_token"].(string))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

// userClaims adds the current user's email and name claims. p.mu is held.
func (p *OIDC) userClaims(c map[string]any) {
	c["email"] = p.user.Email
	switch {
	case p.faults.NoEmailVerified:
	case p.faults.StringVerified:
		c["email_verified"] = fmt.Sprint(p.user.EmailVerified)
	default:
		c["email_verified"] = p.user.EmailVerified
	}
	if p.faults.EmailDomainOwner {
		c["xms_edov"] = true
	}
	if p.user.Name != "" {
		c["name"] = p.user.Name
	}
}

func (p *OIDC) userinfo(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	echo := p.faults.UserinfoEcho
	p.mu.Unlock()
	if echo {
		http.Error(w, "upstream failed for request with Authorization: "+r.Header.Get("Authorization"), http.StatusInternalServerError)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	sub, ok := p.ActiveSubject(tok)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	claims := map[string]any{"sub": sub}
	p.userClaims(claims)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p.pad(w, "userinfo")
	json.NewEncoder(w).Encode(claims)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
