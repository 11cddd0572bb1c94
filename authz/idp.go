package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Connector is one upstream identity provider's sign-in protocol, in the
// shape of dex's CallbackConnector: where to send the person, and the
// provider's answer turned into a verified identity. The login flow knows
// this interface, never the provider; internal/wire adapts the idp/oidc
// and idp/github connectors to it.
type Connector interface {
	// AuthCodeURL returns the provider URL that starts a sign-in which
	// comes back to callbackURL, carrying r's state, nonce and the S256
	// challenge of r's code verifier.
	AuthCodeURL(ctx context.Context, callbackURL string, r UpstreamRequest) (string, error)
	// Exchange redeems code with r's verifier, verifies the answer (an ID
	// token's signature, iss, aud, exp and nonce for OpenID providers)
	// and returns who signed in and the upstream token. Its errors wrap
	// ErrProviderUnavailable, ErrProviderRejected or
	// ErrProviderUnverifiable (and context.DeadlineExceeded on a timeout).
	Exchange(ctx context.Context, callbackURL, code string, r UpstreamRequest) (UpstreamIdentity, *oauth2.Token, error)
	// ResponseIssuer returns the issuer identifier the provider names in
	// the iss parameter of its authorization responses (RFC 9207), and
	// whether it promises to send it always (its metadata's
	// authorization_response_iss_parameter_supported). An issuer of ""
	// means the provider has no such identifier (GitHub): its callback
	// URL of its own is what keeps its answers apart from others'.
	ResponseIssuer(ctx context.Context) (issuer string, required bool, err error)
}

// UpstreamRequest is what the server keeps of a sign-in at a provider,
// between sending the person there and the answer.
type UpstreamRequest struct {
	State        string
	Nonce        string
	CodeVerifier string
}

// UpstreamIdentity is a person as a provider vouches for them.
type UpstreamIdentity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Orgs          []string
}

// The classes of a Connector's failures.
var (
	ErrProviderUnavailable  = errors.New("identity provider unavailable")
	ErrProviderRejected     = errors.New("identity provider refused the request")
	ErrProviderUnverifiable = errors.New("identity provider's answer failed verification")
)

// IdentityProvider is one configured upstream identity provider: its
// connector and who may sign in through it.
type IdentityProvider struct {
	// Name is the URL segment (ISSUER/login/idp/{Name}) and what
	// upstreams of auth type "user" refer to.
	Name        string
	DisplayName string
	Connector   Connector
	// Allow-lists; empty means everyone the provider vouches for. Emails
	// and domains need a verified email and are compared without regard
	// to case; a person passes when either list names them. AllowedOrgs
	// (GitHub) needs membership of one of the organisations.
	AllowedEmails       []string
	AllowedEmailDomains []string
	AllowedOrgs         []string
	// CreateUsers creates, at the first sign-in, an mcpd user named by the
	// verified email. Without it only an existing user with that email
	// (mcpd user add NAME --email ADDR) may sign in.
	CreateUsers bool
}

// Identity links an upstream identity (issuer and subject) to a user.
type Identity struct {
	Issuer    string
	Subject   string
	Provider  string
	User      string
	Email     string
	CreatedAt time.Time
}

// IdentityStore keeps linked identities, users known by email, and the
// server-side records of sign-ins in progress.
type IdentityStore interface {
	LookupIdentity(ctx context.Context, issuer, subject string) (Identity, error) // ErrNotFound
	// LinkIdentity: ErrAlreadyExists when linked already, ErrNotFound for
	// an unknown user.
	LinkIdentity(ctx context.Context, id Identity) error
	// ListIdentities returns the identities linked to user (none for an
	// unknown user).
	ListIdentities(ctx context.Context, user string) ([]Identity, error)
	LookupUserByEmail(ctx context.Context, email string) (string, error) // ErrNotFound
	// CreateExternalUser adds a user without a password: ErrAlreadyExists
	// when the name or email is taken.
	CreateExternalUser(ctx context.Context, name, email string) error
	// PutIDPState keeps data under state until expiresAt; TakeIDPState
	// returns and deletes it (ErrNotFound when missing or expired).
	PutIDPState(ctx context.Context, state string, data []byte, expiresAt time.Time) error
	TakeIDPState(ctx context.Context, state string) ([]byte, error)
}

// UpstreamTokenSaver keeps a user's token at a provider (sealed) for
// api_call. It must run inside the caller's store transaction when ctx
// carries one.
type UpstreamTokenSaver interface {
	SaveUpstreamToken(ctx context.Context, user, provider string, tok *oauth2.Token) error
}

// setIdentityProviders checks and indexes cfg's identity providers.
func (s *Server) setIdentityProviders(cfg Config) error {
	s.idps = map[string]*IdentityProvider{}
	s.identities = cfg.Identities
	s.upstreamTokens = cfg.UpstreamTokens
	s.idpTimeout = cfg.IdentityProviderTimeout
	if s.idpTimeout <= 0 {
		s.idpTimeout = defaultIDPTimeout
	}
	s.idpStarts = newLimiter(60, 10*time.Minute, s.now)
	for i := range cfg.IdentityProviders {
		p := cfg.IdentityProviders[i]
		if !ValidProviderName(p.Name) {
			return fmt.Errorf("authz: identity provider name %q must be 1 to 64 letters, digits, '-' or '_'", p.Name)
		}
		if _, dup := s.idps[p.Name]; dup {
			return fmt.Errorf("authz: identity provider %q declared twice", p.Name)
		}
		if p.Connector == nil {
			return fmt.Errorf("authz: identity provider %q has no connector", p.Name)
		}
		if cfg.Identities == nil {
			return errors.New("authz: identity providers need Identities")
		}
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		s.idps[p.Name] = &p
		s.loginLinks = append(s.loginLinks, s.idpLoginLink(&p))
	}
	return nil
}

// ValidProviderName reports whether n may name an identity provider: the
// URL segment of ISSUER/login/idp/{name}, 1 to 64 ASCII letters, digits,
// '-' or '_'.
func ValidProviderName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// allowed returns "" when p's allow-lists let id in, and otherwise the
// sentence the refusal page shows.
func (p *IdentityProvider) allowed(id UpstreamIdentity) string {
	email := foldEmail(id.Email)
	if len(p.AllowedEmails) > 0 || len(p.AllowedEmailDomains) > 0 {
		if email == "" || !id.EmailVerified {
			return p.DisplayName + " did not confirm an email address for your account, and this server admits only listed addresses."
		}
		_, domain, _ := strings.Cut(email, "@")
		ok := false
		for _, e := range p.AllowedEmails {
			ok = ok || foldEmail(e) == email
		}
		for _, d := range p.AllowedEmailDomains {
			ok = ok || strings.TrimPrefix(foldEmail(d), "@") == domain
		}
		if !ok {
			return "The address " + email + " is not one this server admits through " + p.DisplayName + ". Ask whoever runs this server to allow it."
		}
	}
	if len(p.AllowedOrgs) > 0 {
		ok := false
		for _, want := range p.AllowedOrgs {
			for _, have := range id.Orgs {
				ok = ok || foldEmail(want) == foldEmail(have)
			}
		}
		if !ok {
			return "Your " + p.DisplayName + " account is not a member of an organisation this server admits (" + strings.Join(p.AllowedOrgs, ", ") + "). If you are, grant mcpd access to that organisation at " + p.DisplayName + " and sign in again."
		}
	}
	return ""
}

// foldEmail returns an address (or a domain, or an organisation's login)
// in the form allow-lists and account linking compare: trimmed, with only
// the ASCII letters A-Z in lower case, as the store keeps addresses.
// Unicode case folding would let an address with the Kelvin sign (U+212A,
// folds with k) or the long s (U+017F, folds with s) pass for the ASCII
// address, or domain, an operator listed.
func foldEmail(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, strings.TrimSpace(s))
}
