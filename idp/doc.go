// Package idp holds what every upstream identity provider connector of
// mcpd shares: the Request a sign-in keeps server-side (state, nonce, PKCE
// verifier), the Identity a provider vouches for, and the classes of
// failure (ErrUnavailable, ErrRejected, ErrUnverifiable) a connector wraps
// its errors in.
//
// One package per provider implements a connector in the style of dex's
// connectors: idp/oidc (any OpenID provider, through go-oidc) and
// idp/github (GitHub's OAuth apps and its user, email and org APIs). Each
// has AuthCodeURL (where to send the person), Exchange (the code for a
// verified Identity and the upstream token) and Refresh (a new upstream
// token from the refresh token). idp/vault keeps users' upstream tokens
// sealed and refreshes them.
//
// The consumers declare the interfaces they need: authz declares its
// Connector (sign-in), mcp declares what api_call needs (a user's upstream
// access token), and internal/wire adapts these packages to them. Nothing
// here imports authz, mcp or store, serves HTTP, or decides who may sign
// in; allow-lists and account linking belong to authz. (idp/vault imports
// idp and the leaf internal/keymutex, nothing else.) No connector logs a
// token, code or secret. Every call a connector makes goes through
// BoundedClient: each has a timeout, and no answer is read past
// MaxResponseBytes.
package idp
