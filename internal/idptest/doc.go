// Package idptest holds stand-ins for upstream identity providers, for
// tests only: an OpenID provider (discovery and keys from go-oidc's
// oidctest, plus authorization, token, userinfo endpoints with PKCE,
// single-use codes and rotating refresh tokens) and a GitHub stand-in
// (OAuth endpoints and the user, emails and orgs APIs). Each has knobs
// that make it misbehave the ways real providers do: slow, down, an error
// answer, an ID token of another issuer or audience, a wrong nonce.
//
// The end-to-end proof against a real OpenID provider lives in
// e2e/idp; these stand-ins let unit and integration tests run without one.
package idptest
