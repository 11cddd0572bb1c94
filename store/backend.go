package store

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
)

// Backend is everything mcpd persists, as one interface that every
// database implements: *Store here (bbolt, one process) and
// *postgres.Store (package store/postgres, any number of replicas). The
// records, the sentinel errors and the encoding of fosite requests are this
// package's and shared by both; storetest is the conformance suite that
// proves a backend keeps the rules below. internal/wire adapts a Backend to
// what authz and mcp declare, so neither learns which database it runs on.
//
// The rules every backend keeps, beyond each method's comment:
//   - Reads outside a transaction see only committed writes; every write
//     outside a transaction is durable when it returns, and a transaction
//     (storage.Transactional) when Commit returns. BeginTX on a context
//     that carries an open transaction joins it.
//   - A method that answers one of the sentinel errors (its own or
//     fosite's) inside a transaction leaves the transaction usable, so a
//     caller may go on or roll back. (A database failure may doom it.)
//   - Nothing usable is stored: token signatures and JTIs only as their
//     SHA-256 (SigHash), passwords as argon2id hashes, the form of a fosite
//     request without secrets.
//   - Own records answer ErrNotFound and ErrAlreadyExists; the fosite
//     contracts answer fosite's errors.
//
// A method added to *Store for a new record belongs here too, with its
// rules in storetest, so the PostgreSQL backend implements it.
type Backend interface {
	FositeStorage
	Clients
	Users
	Consents
	Notes
	Grants
	Successors
	ProofJTIs
	SignIn
	Passkeys
	Identities

	// LookupAccessToken reads what bearer-token verification needs of an
	// access token (see AccessTokenInfo); ErrNotFound when there is none
	// or its client is gone. A revocation committed anywhere is seen by
	// every process within a second.
	LookupAccessToken(ctx context.Context, signature string) (AccessTokenInfo, error)
	// Secret returns the random key stored under name, creating it with
	// size bytes on first use; every process gets the same bytes.
	Secret(ctx context.Context, name string, size int) ([]byte, error)
	// LockKey waits until no other holder, in any process sharing the
	// database, holds key, and returns the function that gives it up.
	// The token endpoint holds the key of a refresh token or code while it
	// exchanges it.
	LockKey(ctx context.Context, key string) (unlock func(), err error)
	// Sweep removes what has expired (see SweepStats); RunJanitor calls it
	// every interval until ctx ends, one process at a time.
	Sweep(ctx context.Context) (SweepStats, error)
	RunJanitor(ctx context.Context, interval time.Duration)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the database; it waits for open transactions.
	Close() error
}

// FositeStorage is the fosite storage contracts the authorization server
// uses, as fosite's own MemoryStore implements them.
type FositeStorage interface {
	fosite.ClientManager
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	storage.Transactional
}

// Clients keeps OAuth client registrations.
type Clients interface {
	CreateClient(ctx context.Context, c *Client) error // ErrAlreadyExists
	LookupClient(ctx context.Context, id string) (*Client, error)
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) error
	DeleteClient(ctx context.Context, id string) error
	ListClients(ctx context.Context) ([]*Client, error)
	CountClients(ctx context.Context) (int, error)
}

// Users keeps the people who can log in.
type Users interface {
	CreateUser(ctx context.Context, name, password string) error
	SetPassword(ctx context.Context, name, password string) error
	DeleteUser(ctx context.Context, name string) error
	ListUsers(ctx context.Context) ([]User, error)
	CountUsers(ctx context.Context) (int, error)
	UserExists(ctx context.Context, name string) (bool, error)
	Authenticate(ctx context.Context, name, password string) error
	HasPassword(ctx context.Context, name string) (bool, error) // ErrNotFound
}

// Consents keeps remembered consent decisions.
type Consents interface {
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, user, clientID string) (*Consent, error)
	ListConsents(ctx context.Context, user string) ([]Consent, error)
	DeleteConsent(ctx context.Context, user, clientID string) error
}

// Notes keeps the notes of the MCP tools.
type Notes interface {
	SaveNote(ctx context.Context, owner string, n Note) (Note, error)
	GetNote(ctx context.Context, owner, id string) (Note, error)
	ListNotes(ctx context.Context, owner string) ([]Note, error)
	SearchNotes(ctx context.Context, owner, query string) ([]Note, error)
	DeleteNote(ctx context.Context, owner, id string) error
}

// Grants ends and counts grants as a whole.
type Grants interface {
	RevokeClientGrants(ctx context.Context, clientID string) (int, error)
	RevokeSubjectGrants(ctx context.Context, subject string) (int, error)
	RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error)
	LiveGrants(ctx context.Context) (map[string]int, error)
	ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error)
}

// Successors keeps the sealed answers of refresh rotations for the grace
// window.
type Successors interface {
	PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error
	GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error)
}

// SignIn keeps the state of sign-in that every process serving the issuer
// must see: signed-in browser sessions, authorization requests waiting for
// sign-in or consent, and WebAuthn ceremonies between begin and finish.
type SignIn interface {
	CreateSession(ctx context.Context, s LoginSession, max int) error // ErrAlreadyExists
	GetSession(ctx context.Context, id string) (LoginSession, error)
	TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, user, keep string) (int, error)
	PutPendingAuthorization(ctx context.Context, p PendingAuthorization, max int) error
	GetPendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error)
	TakePendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error)
	PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error
	TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error)
}

// Passkeys keeps users' WebAuthn credentials.
type Passkeys interface {
	CreatePasskey(ctx context.Context, p Passkey) error // ErrNotFound (user), ErrAlreadyExists
	GetPasskey(ctx context.Context, id []byte) (Passkey, error)
	ListPasskeys(ctx context.Context, user string) ([]Passkey, error)
	UpdatePasskey(ctx context.Context, id []byte, fn func(*Passkey) error) error
	DeletePasskey(ctx context.Context, user string, id []byte) error
	CountPasskeys(ctx context.Context) (map[string]int, error)
}

// ProofJTIs keeps the DPoP proofs already seen (RFC 9449 §11.1), by the
// key the caller makes of a proof's key thumbprint and jti.
type ProofJTIs interface {
	// RememberProofJTI records key until exp; ErrAlreadyExists, changing
	// nothing, when it is recorded and unexpired.
	RememberProofJTI(ctx context.Context, key string, exp time.Time) error
	ProofJTIKnown(ctx context.Context, key string) (bool, error)
}

var _ Backend = (*Store)(nil)
