package mcp

import (
	"context"
	"errors"
)

// ErrSignInRequired is what UserTokens returns when mcpd holds no usable
// upstream token of the user at the identity provider: the user signed in
// with a password, never with that provider, or the provider's grant is
// gone. The user must sign in with the provider again.
var ErrSignInRequired = errors.New("sign in with the identity provider again")

// UserTokens hands out a signed-in user's own access token at an upstream
// identity provider, for upstreams whose auth type is "user". The token
// never reaches the MCP client: api_call sends it to the upstream only.
type UserTokens interface {
	// UpstreamAccessToken returns a live access token of user at the
	// identity provider named provider, refreshed when it had expired.
	// ErrSignInRequired when there is none; any other error is passing.
	UpstreamAccessToken(ctx context.Context, user, provider string) (string, error)
}
