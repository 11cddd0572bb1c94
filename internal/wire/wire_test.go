package wire_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

// awayBackend is a backend whose database does not answer: every method
// this test calls fails with store.ErrUnavailable, as the PostgreSQL
// store's do then. (The embedded nil Backend panics on any other.)
type awayBackend struct{ store.Backend }

var errAway = fmt.Errorf("%w: the database does not answer", store.ErrUnavailable)

func (awayBackend) LookupClient(context.Context, string) (*store.Client, error) { return nil, errAway }
func (awayBackend) GetRefreshTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, errAway
}
func (awayBackend) GetAuthorizeCodeSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, errAway
}
func (awayBackend) CountClients(context.Context) (int, error)             { return 0, errAway }
func (awayBackend) UserExists(context.Context, string) (bool, error)      { return false, errAway }
func (awayBackend) LockKey(context.Context, string) (func(), error)       { return nil, errAway }
func (awayBackend) ClientAssertionJWTValid(context.Context, string) error { return errAway }

// TestUnavailableReachesAuthz: a store that cannot answer now reaches
// authz as authz.ErrUnavailable from reads too (which it answers 503), so
// fosite's wrapping of a failed GetClient into invalid_client, which
// sends clients to register again, can be told apart.
func TestUnavailableReachesAuthz(t *testing.T) {
	a := wire.NewAuthzStorage(awayBackend{})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"GetClient", func() error { _, err := a.GetClient(ctx, "c"); return err }},
		{"GetRefreshTokenSession", func() error { _, err := a.GetRefreshTokenSession(ctx, "s", nil); return err }},
		{"GetAuthorizeCodeSession", func() error { _, err := a.GetAuthorizeCodeSession(ctx, "s", nil); return err }},
		{"ClientAssertionJWTValid", func() error { return a.ClientAssertionJWTValid(ctx, "j") }},
		{"CountClients", func() error { _, err := a.CountClients(ctx); return err }},
		{"UserExists", func() error { _, err := a.UserExists(ctx, "u"); return err }},
		{"LockKey", func() error { _, err := a.LockKey(ctx, "k"); return err }},
	} {
		if err := c.call(); !errors.Is(err, authz.ErrUnavailable) {
			t.Errorf("%s: %v; want authz.ErrUnavailable", c.name, err)
		}
	}
}

// TestMCPVerifier: a token authz cannot check now is mcp.ErrUnavailable
// at the MCP endpoint; an invalid one stays invalid.
func TestMCPVerifier(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"the storage cannot answer", fmt.Errorf("authz: looking up token: %w", fmt.Errorf("%w: %w", authz.ErrUnavailable, errAway)), mcp.ErrUnavailable},
		{"an invalid token", fmt.Errorf("%w: unknown or revoked token", auth.ErrInvalidToken), auth.ErrInvalidToken},
	} {
		v := wire.MCPVerifier(func(context.Context, string, *http.Request) (*auth.TokenInfo, error) { return nil, c.err })
		if _, err := v(context.Background(), "t", nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v; want %v", c.name, err, c.want)
		}
	}
}
