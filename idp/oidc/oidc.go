package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
)

// DefaultScopes returns what is asked for when Config.Scopes is empty.
func DefaultScopes() []string { return []string{gooidc.ScopeOpenID, "email", "profile"} }

// defaultTimeout bounds each call to the provider when Config.HTTPClient
// has no timeout.
const defaultTimeout = 10 * time.Second

// Google's issuer: it refuses the offline_access scope and hands out
// refresh tokens for access_type=offline instead.
const googleIssuer = "https://accounts.google.com"

// Config configures a Connector.
type Config struct {
	// Issuer is the provider's issuer URL exactly as its discovery
	// document spells it (ISSUER/.well-known/openid-configuration).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes are asked for at sign-in; "openid" is added when missing.
	// Empty means DefaultScopes(). Add offline_access (most providers) for
	// a refresh token, and the scopes the upstream APIs need.
	Scopes []string
	// HTTPClient makes every call to the provider, through
	// idp.BoundedClient (answers cut at idp.MaxResponseBytes); nil, or
	// one without a timeout, gets a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock for ID token expiry; nil means time.Now.
	Now func() time.Time
}

// Connector signs people in at one OpenID provider. Create it with New.
type Connector struct {
	cfg    Config
	scopes []string
	hc     *http.Client

	mu       sync.Mutex
	provider *gooidc.Provider // nil until discovery succeeds
	verifier *gooidc.IDTokenVerifier
}

// New checks cfg; it makes no network call.
func New(cfg Config) (*Connector, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidc: issuer and client_id are required")
	}
	if !strings.HasPrefix(cfg.Issuer, "https://") && !strings.HasPrefix(cfg.Issuer, "http://") {
		return nil, fmt.Errorf("oidc: issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Connector{cfg: cfg}
	c.hc = idp.BoundedClient(cfg.HTTPClient, defaultTimeout)
	c.scopes = cfg.Scopes
	if len(c.scopes) == 0 {
		c.scopes = DefaultScopes()
	}
	if !slices.Contains(c.scopes, gooidc.ScopeOpenID) {
		c.scopes = append([]string{gooidc.ScopeOpenID}, c.scopes...)
	}
	return c, nil
}

// Issuer returns the configured issuer.
func (c *Connector) Issuer() string { return c.cfg.Issuer }

// ctx returns ctx with the connector's HTTP client for go-oidc and oauth2.
func (c *Connector) ctx(ctx context.Context) context.Context {
	return gooidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, c.hc), c.hc)
}

// discover returns the provider, fetching its discovery document when it
// has not been fetched successfully yet. Its verifier keeps the provider's
// signing keys between sign-ins and fetches them again for an unknown key
// id.
func (c *Connector) discover(ctx context.Context) (*gooidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	p, err := gooidc.NewProvider(c.ctx(ctx), c.cfg.Issuer)
	if err != nil {
		var mismatch *gooidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("%w: %v", idp.ErrUnverifiable, err)
		}
		return nil, idp.HTTPError("discovery", err)
	}
	if err := checkEndpoints(c.cfg.Issuer, p); err != nil {
		return nil, err
	}
	c.provider = p
	c.verifier = p.Verifier(&gooidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now})
	return p, nil
}

// checkEndpoints refuses a discovery document of an https issuer that
// sends mcpd to a plain http endpoint: the client secret, codes and tokens
// would cross the network in the clear (OpenID Connect Core §16.17 wants
// TLS for every one of them). An http issuer (a provider on loopback, as
// in tests; cmd/mcpd allows no other) is not checked.
func checkEndpoints(issuer string, p *gooidc.Provider) error {
	if !strings.HasPrefix(issuer, "https://") {
		return nil
	}
	var meta struct {
		JWKS     string `json:"jwks_uri"`
		UserInfo string `json:"userinfo_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return fmt.Errorf("%w: reading the discovery document: %v", idp.ErrUnverifiable, err)
	}
	for name, u := range map[string]string{
		"authorization_endpoint": p.Endpoint().AuthURL, "token_endpoint": p.Endpoint().TokenURL,
		"jwks_uri": meta.JWKS, "userinfo_endpoint": meta.UserInfo,
	} {
		if u != "" && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("%w: the discovery document's %s is not https", idp.ErrUnverifiable, name)
		}
	}
	return nil
}

func (c *Connector) oauth2Config(p *gooidc.Provider, callbackURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.cfg.ClientID,
		ClientSecret: c.cfg.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  callbackURL,
		Scopes:       c.scopes,
	}
}

// AuthCodeURL returns the provider's authorization URL for a sign-in that
// returns to callbackURL, with r's state, nonce and S256 code challenge.
func (c *Connector) AuthCodeURL(ctx context.Context, callbackURL string, r idp.Request) (string, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(r.Nonce), oauth2.S256ChallengeOption(r.CodeVerifier)}
	if c.cfg.Issuer == googleIssuer {
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"))
	}
	return c.oauth2Config(p, callbackURL).AuthCodeURL(r.State, opts...), nil
}

// ResponseIssuer returns the issuer identifier the provider puts in the
// iss parameter of its authorization responses (RFC 9207), which is its
// issuer, and whether its discovery document promises to send it
// (authorization_response_iss_parameter_supported).
func (c *Connector) ResponseIssuer(ctx context.Context) (string, bool, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return "", false, err
	}
	var meta struct {
		IssParameter bool `json:"authorization_response_iss_parameter_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return "", false, fmt.Errorf("%w: reading the discovery document: %v", idp.ErrUnverifiable, err)
	}
	return c.cfg.Issuer, meta.IssParameter, nil
}

// claims are the ID token and userinfo claims the connector reads.
type claims struct {
	Subject           string          `json:"sub"`
	AuthorizedParty   string          `json:"azp"`
	Email             string          `json:"email"`
	EmailVerified     json.RawMessage `json:"email_verified"`
	EmailDomainOwner  json.RawMessage `json:"xms_edov"` // Microsoft Entra ID
	Name              string          `json:"name"`
	PreferredUsername string          `json:"preferred_username"`
}

// flag reads a boolean claim that some providers send as a string.
func flag(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "true")
}

// verified reports whether the claims say the person controls the email
// address: email_verified, or, for Entra ID, which sends none, its
// email-domain-owner-verified claim xms_edov.
func (cl claims) verified() bool {
	if len(cl.EmailVerified) > 0 {
		return flag(cl.EmailVerified)
	}
	return flag(cl.EmailDomainOwner)
}

// Exchange redeems code at the token endpoint with r's verifier, verifies
// the ID token (signature, iss, aud, azp, exp, nonce, at_hash) and returns the
// identity it vouches for, with the upstream token. Claims missing from
// the ID token are read from the userinfo endpoint, whose subject must be
// the ID token's.
func (c *Connector) Exchange(ctx context.Context, callbackURL, code string, r idp.Request) (idp.Identity, *oauth2.Token, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return idp.Identity{}, nil, err
	}
	ctx = c.ctx(ctx)
	tok, err := c.oauth2Config(p, callbackURL).Exchange(ctx, code, oauth2.VerifierOption(r.CodeVerifier))
	if err != nil {
		return idp.Identity{}, nil, idp.TokenError(err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return idp.Identity{}, nil, fmt.Errorf("%w: the token response holds no id_token", idp.ErrUnverifiable)
	}
	c.mu.Lock()
	v := c.verifier
	c.mu.Unlock()
	idt, err := v.Verify(ctx, rawID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return idp.Identity{}, nil, idp.HTTPError("fetching the signing keys", err)
		}
		return idp.Identity{}, nil, fmt.Errorf("%w: %v", idp.ErrUnverifiable, err)
	}
	if r.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(r.Nonce)) != 1 {
		return idp.Identity{}, nil, fmt.Errorf("%w: the ID token's nonce is not this sign-in's", idp.ErrUnverifiable)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return idp.Identity{}, nil, fmt.Errorf("%w: %v", idp.ErrUnverifiable, err)
		}
	}
	var cl claims
	if err := idt.Claims(&cl); err != nil {
		return idp.Identity{}, nil, fmt.Errorf("%w: reading the ID token's claims: %v", idp.ErrUnverifiable, err)
	}
	// OpenID Connect Core §3.1.3.7 steps 4 and 5 (go-oidc checks only that
	// aud holds the client): a token for several audiences names the one
	// it was issued to in azp, and an azp must be this client.
	if cl.AuthorizedParty != "" && cl.AuthorizedParty != c.cfg.ClientID {
		return idp.Identity{}, nil, fmt.Errorf("%w: the ID token was issued to another client (azp)", idp.ErrUnverifiable)
	}
	if len(idt.Audience) > 1 && cl.AuthorizedParty == "" {
		return idp.Identity{}, nil, fmt.Errorf("%w: the ID token has several audiences and no azp", idp.ErrUnverifiable)
	}
	if cl.Email == "" && p.UserInfoEndpoint() != "" {
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return idp.Identity{}, nil, idp.HTTPError("userinfo", err)
		}
		if ui.Subject != idt.Subject {
			return idp.Identity{}, nil, fmt.Errorf("%w: userinfo is about another subject", idp.ErrUnverifiable)
		}
		var uc claims
		if err := ui.Claims(&uc); err != nil {
			return idp.Identity{}, nil, fmt.Errorf("%w: reading userinfo: %v", idp.ErrUnverifiable, err)
		}
		cl.Email, cl.EmailVerified, cl.EmailDomainOwner = uc.Email, uc.EmailVerified, uc.EmailDomainOwner
		if cl.Name == "" {
			cl.Name = uc.Name
		}
		if cl.PreferredUsername == "" {
			cl.PreferredUsername = uc.PreferredUsername
		}
	}
	id := idp.Identity{
		Issuer:        idt.Issuer,
		Subject:       idt.Subject,
		Email:         cl.Email,
		EmailVerified: cl.Email != "" && cl.verified(),
		Name:          cl.Name,
	}
	if id.Name == "" {
		id.Name = cl.PreferredUsername
	}
	return id, tok, nil
}

// Refresh returns a new upstream token for tok's refresh token. A refusal
// (a revoked or expired grant) is ErrRejected.
func (c *Connector) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	if tok == nil || tok.RefreshToken == "" {
		return nil, fmt.Errorf("%w: no refresh token", idp.ErrRejected)
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	// Only the refresh token goes out: a token source with no access
	// token refreshes at once.
	src := c.oauth2Config(p, "").TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: tok.RefreshToken})
	nt, err := src.Token()
	if err != nil {
		return nil, idp.TokenError(err)
	}
	return nt, nil
}
