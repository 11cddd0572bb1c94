package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

// Store is the storage seam the adapters wrap: any store.Backend, bbolt or
// PostgreSQL. (The alias also names AuthzStorage's embedded field Store.)
type Store = store.Backend

// AuthzStorage adapts a store.Backend to authz.Storage. The fosite
// contracts pass straight through; the records convert between the two
// packages' types, which mirror each other field for field.
type AuthzStorage struct {
	Store
}

// NewAuthzStorage returns s as an authz.Storage.
func NewAuthzStorage(s store.Backend) AuthzStorage { return AuthzStorage{Store: s} }

var _ authz.Storage = AuthzStorage{}

func toAuthzClient(c *store.Client) *authz.Client {
	ac := authz.Client(*c)
	return &ac
}

func toStoreClient(c *authz.Client) *store.Client {
	sc := store.Client(*c)
	return &sc
}

// authzErr maps the store's sentinels onto authz's.
func authzErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return authz.ErrNotFound
	case errors.Is(err, store.ErrAlreadyExists):
		return authz.ErrAlreadyExists
	case errors.Is(err, store.ErrBadCredentials):
		return authz.ErrBadCredentials
	}
	return fositeErr(err)
}

// RememberProofJTI maps the store's ErrAlreadyExists onto authz's.
func (a AuthzStorage) RememberProofJTI(ctx context.Context, key string, exp time.Time) error {
	return authzErr(a.Store.RememberProofJTI(ctx, key, exp))
}

// fositeErr keeps the errors of the fosite contracts, which fosite reads
// as they are, and marks a request the storage cannot serve now (a write
// the disk did not take, a database read-only or away) as
// authz.ErrUnavailable, which authz answers with 503.
func fositeErr(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w: %w", authz.ErrUnavailable, err)
	}
	return err
}

// The fosite contracts pass through fositeErr, reads too: on PostgreSQL a
// read fails when the database is away, and fosite wraps what GetClient
// answers into invalid_client unless authz can tell it apart (a client
// told invalid_client registers again).

func (a AuthzStorage) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := a.Store.GetAuthorizeCodeSession(ctx, signature, session)
	return r, fositeErr(err)
}

func (a AuthzStorage) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := a.Store.GetPKCERequestSession(ctx, signature, session)
	return r, fositeErr(err)
}

func (a AuthzStorage) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := a.Store.GetAccessTokenSession(ctx, signature, session)
	return r, fositeErr(err)
}

func (a AuthzStorage) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, err := a.Store.GetRefreshTokenSession(ctx, signature, session)
	return r, fositeErr(err)
}

func (a AuthzStorage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	return fositeErr(a.Store.ClientAssertionJWTValid(ctx, jti))
}

// LockKey marks a lock the storage cannot take now as authz.ErrUnavailable.
func (a AuthzStorage) LockKey(ctx context.Context, key string) (func(), error) {
	unlock, err := a.Store.LockKey(ctx, key)
	return unlock, authzErr(err)
}

func (a AuthzStorage) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return fositeErr(a.Store.CreateAuthorizeCodeSession(ctx, signature, req))
}

func (a AuthzStorage) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	return fositeErr(a.Store.InvalidateAuthorizeCodeSession(ctx, signature))
}

func (a AuthzStorage) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return fositeErr(a.Store.CreatePKCERequestSession(ctx, signature, req))
}

func (a AuthzStorage) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return fositeErr(a.Store.DeletePKCERequestSession(ctx, signature))
}

func (a AuthzStorage) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return fositeErr(a.Store.CreateAccessTokenSession(ctx, signature, req))
}

func (a AuthzStorage) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return fositeErr(a.Store.DeleteAccessTokenSession(ctx, signature))
}

func (a AuthzStorage) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return fositeErr(a.Store.CreateRefreshTokenSession(ctx, signature, accessSignature, req))
}

func (a AuthzStorage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return fositeErr(a.Store.DeleteRefreshTokenSession(ctx, signature))
}

func (a AuthzStorage) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return fositeErr(a.Store.RotateRefreshToken(ctx, requestID, signature))
}

func (a AuthzStorage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return fositeErr(a.Store.RevokeRefreshToken(ctx, requestID))
}

func (a AuthzStorage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return fositeErr(a.Store.RevokeAccessToken(ctx, requestID))
}

func (a AuthzStorage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return fositeErr(a.Store.SetClientAssertionJWT(ctx, jti, exp))
}

func (a AuthzStorage) BeginTX(ctx context.Context) (context.Context, error) {
	c, err := a.Store.BeginTX(ctx)
	return c, fositeErr(err)
}

func (a AuthzStorage) Commit(ctx context.Context) error { return fositeErr(a.Store.Commit(ctx)) }

// GetClient returns the registration as an *authz.Client, which authz
// type-asserts for the consent page.
func (a AuthzStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := a.Store.LookupClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, fositeErr(err)
	}
	return toAuthzClient(c), nil
}

func (a AuthzStorage) CountClients(ctx context.Context) (int, error) {
	n, err := a.Store.CountClients(ctx)
	return n, authzErr(err)
}

func (a AuthzStorage) UserExists(ctx context.Context, name string) (bool, error) {
	ok, err := a.Store.UserExists(ctx, name)
	return ok, authzErr(err)
}

func (a AuthzStorage) ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error) {
	reqs, err := a.Store.ListSubjectGrants(ctx, subject, newSession)
	return reqs, authzErr(err)
}

func (a AuthzStorage) RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error) {
	n, err := a.Store.RevokeSubjectClientGrants(ctx, subject, clientID)
	return n, authzErr(err)
}

func (a AuthzStorage) CreateClient(ctx context.Context, c *authz.Client) error {
	return authzErr(a.Store.CreateClient(ctx, toStoreClient(c)))
}

func (a AuthzStorage) LookupClient(ctx context.Context, id string) (*authz.Client, error) {
	c, err := a.Store.LookupClient(ctx, id)
	if err != nil {
		return nil, authzErr(err)
	}
	return toAuthzClient(c), nil
}

func (a AuthzStorage) UpdateClient(ctx context.Context, id string, fn func(*authz.Client) error) error {
	return authzErr(a.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		ac := toAuthzClient(c)
		if err := fn(ac); err != nil {
			return err
		}
		*c = *toStoreClient(ac)
		return nil
	}))
}

func (a AuthzStorage) DeleteClient(ctx context.Context, id string) error {
	return authzErr(a.Store.DeleteClient(ctx, id))
}

func (a AuthzStorage) PutConsent(ctx context.Context, c authz.Consent) error {
	return authzErr(a.Store.PutConsent(ctx, store.Consent(c)))
}

func (a AuthzStorage) GetConsent(ctx context.Context, user, clientID string) (*authz.Consent, error) {
	c, err := a.Store.GetConsent(ctx, user, clientID)
	if err != nil {
		return nil, authzErr(err)
	}
	ac := authz.Consent(*c)
	return &ac, nil
}

func (a AuthzStorage) ListConsents(ctx context.Context, user string) ([]authz.Consent, error) {
	cs, err := a.Store.ListConsents(ctx, user)
	if err != nil {
		return nil, authzErr(err)
	}
	out := make([]authz.Consent, len(cs))
	for i, c := range cs {
		out[i] = authz.Consent(c)
	}
	return out, nil
}

func (a AuthzStorage) DeleteConsent(ctx context.Context, user, clientID string) error {
	return authzErr(a.Store.DeleteConsent(ctx, user, clientID))
}

func (a AuthzStorage) Authenticate(ctx context.Context, name, password string) error {
	return authzErr(a.Store.Authenticate(ctx, name, password))
}

func (a AuthzStorage) HasPassword(ctx context.Context, name string) (bool, error) {
	ok, err := a.Store.HasPassword(ctx, name)
	return ok, authzErr(err)
}

func (a AuthzStorage) SetPassword(ctx context.Context, name, password string) error {
	return authzErr(a.Store.SetPassword(ctx, name, password))
}

func (a AuthzStorage) GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error) {
	b, err := a.Store.GetRefreshSuccessor(ctx, oldSignature)
	return b, authzErr(err)
}

func (a AuthzStorage) PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error {
	return authzErr(a.Store.PutRefreshSuccessor(ctx, oldSignature, sealed, expiresAt))
}

// LookupAccessToken shadows the store's method of the same name, whose
// result is the store's type.
func (a AuthzStorage) LookupAccessToken(ctx context.Context, signature string) (authz.AccessTokenInfo, error) {
	info, err := a.Store.LookupAccessToken(ctx, signature)
	return authz.AccessTokenInfo(info), authzErr(err)
}

func (a AuthzStorage) CreateSession(ctx context.Context, s authz.LoginSession, max int) error {
	return authzErr(a.Store.CreateSession(ctx, store.LoginSession(s), max))
}

func (a AuthzStorage) GetSession(ctx context.Context, id string) (authz.LoginSession, error) {
	s, err := a.Store.GetSession(ctx, id)
	return authz.LoginSession(s), authzErr(err)
}

func (a AuthzStorage) TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error {
	return authzErr(a.Store.TouchSession(ctx, id, lastSeen, expiresAt))
}

func (a AuthzStorage) DeleteSession(ctx context.Context, id string) error {
	return authzErr(a.Store.DeleteSession(ctx, id))
}

func (a AuthzStorage) DeleteUserSessions(ctx context.Context, user, keep string) (int, error) {
	n, err := a.Store.DeleteUserSessions(ctx, user, keep)
	return n, authzErr(err)
}

func (a AuthzStorage) PutPendingAuthorization(ctx context.Context, p authz.PendingAuthorization, max int) error {
	return authzErr(a.Store.PutPendingAuthorization(ctx, store.PendingAuthorization(p), max))
}

func (a AuthzStorage) GetPendingAuthorization(ctx context.Context, id string) (authz.PendingAuthorization, error) {
	p, err := a.Store.GetPendingAuthorization(ctx, id)
	return authz.PendingAuthorization(p), authzErr(err)
}

func (a AuthzStorage) TakePendingAuthorization(ctx context.Context, id string) (authz.PendingAuthorization, error) {
	p, err := a.Store.TakePendingAuthorization(ctx, id)
	return authz.PendingAuthorization(p), authzErr(err)
}

func (a AuthzStorage) CreatePasskey(ctx context.Context, p authz.Passkey) error {
	return authzErr(a.Store.CreatePasskey(ctx, store.Passkey(p)))
}

func (a AuthzStorage) GetPasskey(ctx context.Context, id []byte) (authz.Passkey, error) {
	p, err := a.Store.GetPasskey(ctx, id)
	return authz.Passkey(p), authzErr(err)
}

func (a AuthzStorage) ListPasskeys(ctx context.Context, user string) ([]authz.Passkey, error) {
	ps, err := a.Store.ListPasskeys(ctx, user)
	if err != nil {
		return nil, authzErr(err)
	}
	out := make([]authz.Passkey, len(ps))
	for i, p := range ps {
		out[i] = authz.Passkey(p)
	}
	return out, nil
}

func (a AuthzStorage) UpdatePasskey(ctx context.Context, id []byte, fn func(*authz.Passkey) error) error {
	return authzErr(a.Store.UpdatePasskey(ctx, id, func(p *store.Passkey) error {
		ap := authz.Passkey(*p)
		if err := fn(&ap); err != nil {
			return err
		}
		*p = store.Passkey(ap)
		return nil
	}))
}

func (a AuthzStorage) DeletePasskey(ctx context.Context, user string, id []byte) error {
	return authzErr(a.Store.DeletePasskey(ctx, user, id))
}

func (a AuthzStorage) PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error {
	return authzErr(a.Store.PutWebAuthnSession(ctx, id, data, expiresAt, max))
}

func (a AuthzStorage) TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error) {
	b, err := a.Store.TakeWebAuthnSession(ctx, id)
	return b, authzErr(err)
}

// NotesStore adapts a store.Backend to mcp.NotesStore.
type NotesStore struct {
	s store.Backend
}

// NewNotesStore returns s as an mcp.NotesStore.
func NewNotesStore(s store.Backend) NotesStore { return NotesStore{s: s} }

var _ mcp.NotesStore = NotesStore{}

func notesErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return mcp.ErrNoteNotFound
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w: %w", mcp.ErrUnavailable, err)
	}
	return err
}

func (n NotesStore) SaveNote(ctx context.Context, owner string, note mcp.Note) (mcp.Note, error) {
	saved, err := n.s.SaveNote(ctx, owner, store.Note(note))
	return mcp.Note(saved), notesErr(err)
}

func (n NotesStore) GetNote(ctx context.Context, owner, id string) (mcp.Note, error) {
	note, err := n.s.GetNote(ctx, owner, id)
	return mcp.Note(note), notesErr(err)
}

func (n NotesStore) ListNotes(ctx context.Context, owner string) ([]mcp.Note, error) {
	notes, err := n.s.ListNotes(ctx, owner)
	return toMCPNotes(notes), notesErr(err)
}

func (n NotesStore) SearchNotes(ctx context.Context, owner, query string) ([]mcp.Note, error) {
	notes, err := n.s.SearchNotes(ctx, owner, query)
	return toMCPNotes(notes), notesErr(err)
}

func (n NotesStore) DeleteNote(ctx context.Context, owner, id string) error {
	return notesErr(n.s.DeleteNote(ctx, owner, id))
}

func toMCPNotes(in []store.Note) []mcp.Note {
	out := make([]mcp.Note, len(in))
	for i, n := range in {
		out[i] = mcp.Note(n)
	}
	return out
}

// MCPVerifier adapts authz's token verifier to mcp's: a token the storage
// cannot check now (authz.ErrUnavailable) is mcp.ErrUnavailable, which
// /mcp answers with 503 and Retry-After rather than 500.
func MCPVerifier(verify auth.TokenVerifier) auth.TokenVerifier {
	return func(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
		ti, err := verify(ctx, token, r)
		if errors.Is(err, authz.ErrUnavailable) {
			return nil, fmt.Errorf("%w: %w", mcp.ErrUnavailable, err)
		}
		return ti, err
	}
}
