package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
)

// Defaults of Config.
const (
	DefaultBaseURL = "https://github.com"
	DefaultAPIURL  = "https://api.github.com"
	defaultTimeout = 10 * time.Second
	maxOrgPages    = 10
)

// DefaultScopes returns what is asked for when Config.Scopes is empty.
func DefaultScopes() []string { return []string{"read:user", "user:email"} }

// Config configures a Connector.
type Config struct {
	ClientID     string
	ClientSecret string
	// Scopes are asked for at sign-in; empty means DefaultScopes(), and
	// read:org is added when FetchOrgs is set.
	Scopes []string
	// BaseURL is where people sign in (BaseURL/login/oauth/authorize);
	// default https://github.com. It is also the issuer of identities.
	BaseURL string
	// APIURL is the REST API; default https://api.github.com (GitHub
	// Enterprise Server: BaseURL/api/v3).
	APIURL string
	// FetchOrgs reads the person's organisations into Identity.Orgs.
	FetchOrgs bool
	// HTTPClient makes every call to GitHub, through idp.BoundedClient
	// (answers cut at idp.MaxResponseBytes); nil, or one without a
	// timeout, gets a 10 s timeout.
	HTTPClient *http.Client
}

// Connector signs people in with GitHub. Create it with New.
type Connector struct {
	cfg   Config
	oauth *oauth2.Config
	hc    *http.Client
}

// New checks cfg; it makes no network call.
func New(cfg Config) (*Connector, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("github: client_id is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	cfg.APIURL = strings.TrimSuffix(cfg.APIURL, "/")
	for _, u := range []string{cfg.BaseURL, cfg.APIURL} {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return nil, fmt.Errorf("github: %q is not an http(s) URL", u)
		}
	}
	scopes := slices.Clone(cfg.Scopes)
	if len(scopes) == 0 {
		scopes = DefaultScopes()
	}
	if cfg.FetchOrgs && !slices.Contains(scopes, "read:org") {
		scopes = append(scopes, "read:org")
	}
	c := &Connector{cfg: cfg}
	c.hc = idp.BoundedClient(cfg.HTTPClient, defaultTimeout)
	c.oauth = &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   cfg.BaseURL + "/login/oauth/authorize",
			TokenURL:  cfg.BaseURL + "/login/oauth/access_token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
		Scopes: scopes,
	}
	return c, nil
}

// Issuer returns the base URL, which identities carry as their issuer.
func (c *Connector) Issuer() string { return c.cfg.BaseURL }

func (c *Connector) config(callbackURL string) *oauth2.Config {
	cfg := *c.oauth
	cfg.RedirectURL = callbackURL
	return &cfg
}

// AuthCodeURL returns GitHub's authorization URL for a sign-in that
// returns to callbackURL, with r's state and S256 code challenge (GitHub
// has no ID token, so no nonce).
func (c *Connector) AuthCodeURL(_ context.Context, callbackURL string, r idp.Request) (string, error) {
	return c.config(callbackURL).AuthCodeURL(r.State, oauth2.S256ChallengeOption(r.CodeVerifier)), nil
}

// ResponseIssuer returns "": GitHub names no issuer in its authorization
// responses (RFC 9207) and publishes no metadata; the callback URL of its
// own keeps its answers apart from other providers'.
func (c *Connector) ResponseIssuer(context.Context) (string, bool, error) {
	return "", false, nil
}

// Exchange redeems code with r's verifier and reads who signed in from the
// API with the new token.
func (c *Connector) Exchange(ctx context.Context, callbackURL, code string, r idp.Request) (idp.Identity, *oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	tok, err := c.config(callbackURL).Exchange(ctx, code, oauth2.VerifierOption(r.CodeVerifier))
	if err != nil {
		return idp.Identity{}, nil, idp.TokenError(err)
	}
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := c.get(ctx, tok, "/user", &user); err != nil {
		return idp.Identity{}, nil, err
	}
	if user.ID == 0 {
		return idp.Identity{}, nil, fmt.Errorf("%w: /user has no id", idp.ErrUnverifiable)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := c.get(ctx, tok, "/user/emails", &emails); err != nil {
		return idp.Identity{}, nil, err
	}
	id := idp.Identity{Issuer: c.cfg.BaseURL, Subject: strconv.FormatInt(user.ID, 10), Name: user.Login}
	for _, e := range emails {
		if e.Primary {
			id.Email, id.EmailVerified = e.Email, e.Verified
		}
	}
	if c.cfg.FetchOrgs {
		for page := 1; page <= maxOrgPages; page++ {
			var orgs []struct {
				Login string `json:"login"`
			}
			if err := c.get(ctx, tok, fmt.Sprintf("/user/orgs?per_page=100&page=%d", page), &orgs); err != nil {
				return idp.Identity{}, nil, err
			}
			for _, o := range orgs {
				id.Orgs = append(id.Orgs, o.Login)
			}
			if len(orgs) < 100 {
				break
			}
		}
	}
	return id, tok, nil
}

// get reads one API resource into out.
func (c *Connector) get(ctx context.Context, tok *oauth2.Token, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.APIURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	tok.SetAuthHeader(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return idp.HTTPError("GET "+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // bounded by idp.BoundedClient
	switch {
	case err != nil:
		return idp.HTTPError("GET "+path, err)
	case resp.StatusCode >= 500:
		return fmt.Errorf("%w: GET %s answered status %d", idp.ErrUnavailable, path, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: GET %s answered status %d", idp.ErrRejected, path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: GET %s: %v", idp.ErrUnverifiable, path, err)
	}
	return nil
}

// Refresh returns a new token for tok's refresh token (GitHub Apps with
// expiring user tokens; OAuth apps' tokens do not expire). A refusal is
// ErrRejected.
func (c *Connector) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	if tok == nil || tok.RefreshToken == "" {
		return nil, fmt.Errorf("%w: no refresh token", idp.ErrRejected)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	nt, err := c.config("").TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		return nil, idp.TokenError(err)
	}
	return nt, nil
}
