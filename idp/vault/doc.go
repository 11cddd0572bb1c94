// Package vault keeps the upstream OAuth tokens mcpd holds for its users
// (the tokens an identity provider gave at sign-in, which api_call uses to
// call an API as the user) sealed with AES-256-GCM, and hands out a live
// access token, refreshing it through the provider when it has expired.
//
// A sealed token is bound to its user and provider (they are the
// additional data of the seal), so a sealed blob moved to another user
// does not open. The key comes from the caller (cmd/mcpd keeps it in the
// store); the store sees sealed bytes only. Concurrent callers for one
// user and provider refresh once: the second waits for the first and uses
// its token. Processes that share the store do not wait for each other;
// when the provider refuses a refresh token another process has just
// rotated, the token that process kept is used instead. A refresh the
// provider refuses (the grant was revoked or has expired) forgets the
// token, and the caller hears ErrNoToken, as for a user who never signed
// in with that provider.
//
// It declares the Store it needs; cmd/mcpd adapts the store package to it
// (internal/wire). It imports of mcpd only idp and the leaf
// internal/keymutex. The package never logs a token and never returns a
// refresh token.
package vault
