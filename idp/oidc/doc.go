// Package oidc is mcpd's connector to any OpenID provider (Google,
// Microsoft Entra ID, Keycloak, Okta, …): discovery, the authorization-code
// flow with PKCE, state and nonce, and an ID token verified by
// github.com/coreos/go-oidc (signature against the provider's JWKS, iss,
// aud, exp) plus azp, the nonce and at_hash, with email_verified honoured.
//
// It discovers the provider lazily, on the first sign-in, and again after
// a failure, so mcpd starts while the provider is down. It keeps no state
// of its own between calls and never logs a token or secret.
package oidc
