package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/idp"
	"github.com/mcpd/mcpd/idp/vault"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

var _ authz.IdentityStore = AuthzStorage{}

// LookupIdentity shadows the store's method, whose result is the store's
// type.
func (a AuthzStorage) LookupIdentity(ctx context.Context, issuer, subject string) (authz.Identity, error) {
	id, err := a.Store.LookupIdentity(ctx, issuer, subject)
	return authz.Identity(id), authzErr(err)
}

func (a AuthzStorage) LinkIdentity(ctx context.Context, id authz.Identity) error {
	return authzErr(a.Store.LinkIdentity(ctx, store.Identity(id)))
}

// ListIdentities shadows the store's method, whose result is the store's
// type.
func (a AuthzStorage) ListIdentities(ctx context.Context, user string) ([]authz.Identity, error) {
	ids, err := a.Store.ListIdentities(ctx, user)
	out := make([]authz.Identity, len(ids))
	for i, id := range ids {
		out[i] = authz.Identity(id)
	}
	return out, authzErr(err)
}

func (a AuthzStorage) LookupUserByEmail(ctx context.Context, email string) (string, error) {
	name, err := a.Store.LookupUserByEmail(ctx, email)
	return name, authzErr(err)
}

func (a AuthzStorage) CreateExternalUser(ctx context.Context, name, email string) error {
	return authzErr(a.Store.CreateExternalUser(ctx, name, email))
}

func (a AuthzStorage) PutIDPState(ctx context.Context, state string, data []byte, expiresAt time.Time) error {
	return authzErr(a.Store.PutIDPState(ctx, state, data, expiresAt))
}

func (a AuthzStorage) TakeIDPState(ctx context.Context, state string) ([]byte, error) {
	b, err := a.Store.TakeIDPState(ctx, state)
	return b, authzErr(err)
}

// connector is what the idp/oidc and idp/github connectors have in common.
type connector interface {
	AuthCodeURL(ctx context.Context, callbackURL string, r idp.Request) (string, error)
	Exchange(ctx context.Context, callbackURL, code string, r idp.Request) (idp.Identity, *oauth2.Token, error)
	ResponseIssuer(ctx context.Context) (string, bool, error)
}

// Connector adapts an idp connector to authz.Connector.
type Connector struct {
	C connector
}

var _ authz.Connector = Connector{}

func (c Connector) AuthCodeURL(ctx context.Context, callbackURL string, r authz.UpstreamRequest) (string, error) {
	u, err := c.C.AuthCodeURL(ctx, callbackURL, idp.Request(r))
	return u, providerErr(err)
}

func (c Connector) Exchange(ctx context.Context, callbackURL, code string, r authz.UpstreamRequest) (authz.UpstreamIdentity, *oauth2.Token, error) {
	id, tok, err := c.C.Exchange(ctx, callbackURL, code, idp.Request(r))
	return authz.UpstreamIdentity(id), tok, providerErr(err)
}

func (c Connector) ResponseIssuer(ctx context.Context) (string, bool, error) {
	iss, required, err := c.C.ResponseIssuer(ctx)
	return iss, required, providerErr(err)
}

// providerErr maps idp's failure classes onto authz's, keeping the chain
// (a timeout stays context.DeadlineExceeded).
func providerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, idp.ErrUnavailable):
		return fmt.Errorf("%w: %w", authz.ErrProviderUnavailable, err)
	case errors.Is(err, idp.ErrRejected):
		return fmt.Errorf("%w: %w", authz.ErrProviderRejected, err)
	case errors.Is(err, idp.ErrUnverifiable):
		return fmt.Errorf("%w: %w", authz.ErrProviderUnverifiable, err)
	}
	return err
}

// VaultStore adapts a store's Identities to vault.Store.
type VaultStore struct {
	S store.Identities
}

var _ vault.Store = VaultStore{}

func vaultErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return vault.ErrNotFound
	}
	return err
}

func (v VaultStore) PutUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error {
	return vaultErr(v.S.PutUpstreamToken(ctx, user, provider, sealed))
}

func (v VaultStore) GetUpstreamToken(ctx context.Context, user, provider string) ([]byte, error) {
	b, err := v.S.GetUpstreamToken(ctx, user, provider)
	return b, vaultErr(err)
}

func (v VaultStore) DeleteUpstreamToken(ctx context.Context, user, provider string) error {
	return vaultErr(v.S.DeleteUpstreamToken(ctx, user, provider))
}

// UserTokens adapts a vault to mcp.UserTokens (api_call as the user) and
// to authz.UpstreamTokenSaver (the token a sign-in brings).
type UserTokens struct {
	V *vault.Vault
}

var (
	_ mcp.UserTokens           = UserTokens{}
	_ authz.UpstreamTokenSaver = UserTokens{}
)

func (u UserTokens) UpstreamAccessToken(ctx context.Context, user, provider string) (string, error) {
	tok, err := u.V.AccessToken(ctx, user, provider)
	if errors.Is(err, vault.ErrNoToken) {
		return "", fmt.Errorf("%w: %w", mcp.ErrSignInRequired, err)
	}
	return tok, err
}

func (u UserTokens) SaveUpstreamToken(ctx context.Context, user, provider string, tok *oauth2.Token) error {
	return authzErr(vaultToStoreErr(u.V.Save(ctx, user, provider, tok)))
}

// vaultToStoreErr turns vault.ErrNotFound back into the store's, for
// authzErr.
func vaultToStoreErr(err error) error {
	if errors.Is(err, vault.ErrNotFound) {
		return store.ErrNotFound
	}
	return err
}
