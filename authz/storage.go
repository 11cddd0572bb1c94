package authz

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
)

// Sentinel errors a Storage returns for its own (non-fosite) records.
// The fosite contracts keep fosite's errors (fosite.ErrNotFound,
// fosite.ErrInvalidatedAuthorizeCode, fosite.ErrInactiveToken).
var (
	ErrNotFound       = errors.New("not found")
	ErrAlreadyExists  = errors.New("already exists")
	ErrBadCredentials = errors.New("bad credentials")
)

// Storage is everything the authorization server persists. cmd/mcpd adapts
// the bbolt store to it; tests use an in-memory implementation.
type Storage interface {
	fosite.ClientManager
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	storage.Transactional

	ClientStore
	ConsentStore
	UserAuthenticator
	SuccessorStore
	AccessTokenReader

	// Ping reports whether the storage answers.
	Ping(ctx context.Context) error
}

// ClientStore keeps OAuth client registrations. GetClient (fosite) returns a
// *Client for every registered id.
type ClientStore interface {
	CreateClient(ctx context.Context, c *Client) error // ErrAlreadyExists
	LookupClient(ctx context.Context, id string) (*Client, error)
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) error
	// DeleteClient removes the registration and revokes every grant of it.
	DeleteClient(ctx context.Context, id string) error
	CountClients(ctx context.Context) (int, error)
}

// ConsentStore keeps remembered consent decisions.
type ConsentStore interface {
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, user, clientID string) (*Consent, error) // ErrNotFound
}

// UserAuthenticator checks user names and passwords.
type UserAuthenticator interface {
	// Authenticate returns nil when the password is right; ErrBadCredentials
	// otherwise, for an unknown user too, taking the same time either way.
	Authenticate(ctx context.Context, name, password string) error
	UserExists(ctx context.Context, name string) (bool, error)
}

// SuccessorStore keeps, for a rotated refresh token, the sealed token
// response its rotation produced, so a second use inside the grace window
// gets the same answer. oldSignature is the rotated token's signature.
type SuccessorStore interface {
	PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error
	GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error) // ErrNotFound
}

// AccessTokenReader reads what Verify needs of an access token's record
// without rebuilding the fosite request: it runs on every MCP request.
type AccessTokenReader interface {
	// LookupAccessToken returns the record of the access token with this
	// signature; ErrNotFound when there is none or its client is no longer
	// registered. The caller owns the slices.
	LookupAccessToken(ctx context.Context, signature string) (AccessTokenInfo, error)
}

// AccessTokenInfo is the part of a stored access token Verify checks.
type AccessTokenInfo struct {
	Subject         string
	ClientID        string
	GrantedScopes   []string
	GrantedAudience []string
	ExpiresAt       time.Time // the session's access-token expiry; zero: none set
	Active          bool
	// JKT is the thumbprint of the DPoP key the token is bound to, the
	// session's cnf.jkt (RFC 9449 §6.1); empty for a bearer token.
	JKT string
}

// Client sources: how the authorization server came to know a client.
const (
	SourceDynamic  = "dynamic"  // RFC 7591 registration
	SourceMetadata = "metadata" // client ID metadata document
	SourceStatic   = "static"   // configured by the operator
)

// Client is one OAuth client registration.
type Client struct {
	ID                      string
	SecretHash              []byte // empty for public clients
	Name                    string
	URI                     string
	LogoURI                 string
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	Scopes                  []string
	TokenEndpointAuthMethod string // none, client_secret_basic, client_secret_post
	ApplicationType         string // native, web, or "" when the client sent none
	Contacts                []string
	Source                  string // SourceDynamic, SourceMetadata or SourceStatic
	MetadataURL             string // for SourceMetadata: the document URL (= ID)
	RegistrationTokenHash   []byte // RFC 7592 registration access token, hashed
	CreatedAt               time.Time
	LastUsedAt              time.Time // last token issued
	ActivatedAt             time.Time // first completed authorization; zero until then
	// DPoPBoundAccessTokens: the client registered that it always uses
	// DPoP (RFC 9449 §5.2); its token requests without a proof fail.
	DPoPBoundAccessTokens bool
}

// Consent is a remembered decision of a user to let a client have scopes.
type Consent struct {
	User         string
	ClientID     string
	Scopes       []string
	RedirectHost string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

var _ fosite.Client = (*Client)(nil)

// GetID returns the client id.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret returns the hashed client secret.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs returns the registered redirect URIs.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes returns the registered grant types.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns the registered response types.
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }

// GetScopes returns the scopes the client may ask for: its registered
// ones, and offline_access, which any client may ask for and never needs
// (offline.go).
func (c *Client) GetScopes() fosite.Arguments {
	return append(fosite.Arguments(slices.Clip(c.Scopes)), scopeOfflineAccess)
}

// IsPublic reports whether the client has no secret.
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == "none" }

// GetAudience returns nil: audiences are granted from RFC 8707 resources.
func (c *Client) GetAudience() fosite.Arguments { return nil }
