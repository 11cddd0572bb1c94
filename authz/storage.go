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
	// ErrUnavailable is what a Storage returns for a request it cannot
	// serve now but may later: a write its disk has no room for, a
	// database that is read-only or does not answer. Requests that need
	// one are answered 503 temporarily_unavailable; the storage, not each
	// request, logs why.
	ErrUnavailable = errors.New("storage temporarily unavailable")
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
	KeyLocker
	ProofJTIStore
	SessionStore
	SubjectGrantStore
	PasskeyStore

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
	// ListConsents returns the unexpired consents of user.
	ListConsents(ctx context.Context, user string) ([]Consent, error)
	DeleteConsent(ctx context.Context, user, clientID string) error // ErrNotFound
}

// UserAuthenticator checks user names and passwords.
type UserAuthenticator interface {
	// Authenticate returns nil when the password is right; ErrBadCredentials
	// otherwise, for an unknown user and a user without a password too,
	// taking the same time either way.
	Authenticate(ctx context.Context, name, password string) error
	UserExists(ctx context.Context, name string) (bool, error)
	// HasPassword reports whether the user has a password; one created
	// through an identity provider may have none. ErrNotFound for an
	// unknown user.
	HasPassword(ctx context.Context, name string) (bool, error)
	SetPassword(ctx context.Context, name, password string) error // ErrNotFound
}

// SubjectGrantStore is what the account page needs of a user's grants.
type SubjectGrantStore interface {
	// ListSubjectGrants returns one request per live grant of subject:
	// that of its newest live token, its session decoded into what
	// newSession returns. RequestedAt is when the grant last got a token.
	ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error)
	// RevokeSubjectClientGrants ends every grant of clientID whose subject
	// is subject, every token of them at once, and no other grant.
	RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error)
}

// SessionStore keeps signed-in browser sessions and pending authorization
// requests, so that every process serving the issuer sees them. A session
// is kept under a hash of its cookie, never the cookie. The max arguments
// cap how many records a flood can leave: at the cap, expired records go
// first, then those closest to their expiry.
type SessionStore interface {
	CreateSession(ctx context.Context, s LoginSession, max int) error // ErrAlreadyExists
	GetSession(ctx context.Context, id string) (LoginSession, error)  // ErrNotFound, also once expired
	TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error
	DeleteSession(ctx context.Context, id string) error // ErrNotFound
	// DeleteUserSessions ends every session of user but keep ("" for none).
	DeleteUserSessions(ctx context.Context, user, keep string) (int, error)

	PutPendingAuthorization(ctx context.Context, p PendingAuthorization, max int) error
	GetPendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error) // ErrNotFound
	// TakePendingAuthorization removes and returns it: of two takes, one wins.
	TakePendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error) // ErrNotFound
}

// PasskeyStore keeps users' passkeys (public keys only) and the server
// side of WebAuthn ceremonies between their begin and finish.
type PasskeyStore interface {
	// CreatePasskey: ErrNotFound for an unknown user, ErrAlreadyExists for
	// a credential ID already registered (by anyone).
	CreatePasskey(ctx context.Context, p Passkey) error
	GetPasskey(ctx context.Context, id []byte) (Passkey, error) // ErrNotFound
	ListPasskeys(ctx context.Context, user string) ([]Passkey, error)
	// UpdatePasskey changes anything of the passkey but its ID and user.
	UpdatePasskey(ctx context.Context, id []byte, fn func(*Passkey) error) error
	// DeletePasskey: ErrNotFound unless user has a passkey of that ID.
	DeletePasskey(ctx context.Context, user string, id []byte) error

	PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error
	// TakeWebAuthnSession removes and returns it: a ceremony finishes once.
	TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error) // ErrNotFound
}

// Passkey is a WebAuthn credential of a user: its public key and what
// sign-in checks of it.
type Passkey struct {
	ID                []byte
	User              string
	Name              string
	PublicKey         []byte // COSE_Key
	SignCount         uint32
	AAGUID            []byte
	Transports        []string
	UserPresent       bool
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	AttestationType   string
	AttestationFormat string
	CreatedAt         time.Time
	LastUsedAt        time.Time
}

// LoginSession is a signed-in browser session as the store keeps it.
type LoginSession struct {
	ID        string // a hash of the session cookie
	User      string
	Method    string // how the user signed in: password, passkey, or an identity provider
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
}

// PendingAuthorization is an authorization request waiting for sign-in or
// consent; Form is its URL-encoded query.
type PendingAuthorization struct {
	ID        string
	ClientID  string
	Form      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SuccessorStore keeps, for a rotated refresh token, the sealed token
// response its rotation produced, so a second use inside the grace window
// gets the same answer. oldSignature is the rotated token's signature.
type SuccessorStore interface {
	PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error
	GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error) // ErrNotFound
}

// KeyLocker serializes work on one key across every process that shares
// the storage: replicas of mcpd on one database exchange a refresh token
// or a code one at a time, as one process does.
type KeyLocker interface {
	// LockKey waits until no other holder, in this process or another one
	// sharing the storage, holds key, or ctx ends; it returns the function
	// that gives the key up.
	LockKey(ctx context.Context, key string) (unlock func(), err error)
}

// ProofJTIStore remembers the DPoP proofs the token endpoint accepted
// (RFC 9449 §11.1), in the transaction that issues the tokens when ctx
// carries one.
type ProofJTIStore interface {
	// RememberProofJTI records key until exp; ErrAlreadyExists, and no
	// change, when key is recorded and has not expired.
	RememberProofJTI(ctx context.Context, key string, exp time.Time) error
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
