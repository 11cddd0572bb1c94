// Package authz is mcpd's OAuth 2.1 authorization server, composed on
// fosite. It owns /authorize, /token, /register (RFC 7591, with RFC 7592
// read and delete), /revoke, /introspect, the RFC 8414 metadata document
// and its OpenID Connect twin (metadata.go), the login and consent flow,
// the account page, client ID metadata documents, and the token verification the MCP
// resource server calls on every request.
//
// Besides passwords, people may sign in with upstream identity providers
// (login_idp.go): GET /login/idp/{name} starts an authorization-code flow
// with PKCE, state and nonce at the provider, bound to the browser session
// and kept server-side; /login/idp/{name}/callback verifies the answer
// through the provider's Connector, applies the allow-lists, links the
// identity to a user (creating one with create_users) in one transaction
// with the upstream token, and resumes the pending authorization. The
// flow knows the Connector interface, never a provider.
//
// DPoP (RFC 9449, dpop.go): /token binds the tokens it issues to the key of
// a valid DPoP proof (codes through dpop_jkt, refresh tokens of public
// clients to their key), Verify reports a token's binding (cnf.jkt) so the
// resource server can demand a proof, /introspect reports it, and the
// metadata lists the algorithms. The proof rules themselves are the dpop
// package's, handed in as Config.DPoP.
//
// It declares the Storage it needs and never imports the store package;
// cmd/mcpd adapts the store (bbolt or PostgreSQL) to it through
// internal/wire. Of mcpd it imports only web (it renders pages only
// through web) and the leaf packages dpop and internal/keymutex.
// It does not serve the protected-resource metadata (the mcp package does)
// and never reads tokens from requests it does not own: Verify is handed
// the bearer token by its caller.
//
// Wiring it up:
//
//	az, err := authz.New(authz.Config{
//		Issuer:       "http://127.0.0.1:8080",
//		Storage:      st,
//		Renderer:     renderer,
//		GlobalSecret: secret, // 32+ bytes, kept in the store
//		Scopes:       []authz.Scope{{Name: "notes:read", Description: "Read your notes"}},
//		RefreshGrace: time.Minute,
//	})
//	if err != nil { … }
//	az.Register(router)                           // the OAuth endpoints
//	mw := auth.RequireBearerToken(az.Verify, opts) // the MCP endpoint's guard
//
// Sign-in is one login page with several methods, each a small piece:
// the password form (login_password.go), passkeys (login_passkey.go,
// WebAuthn through go-webauthn, discoverable) and link buttons of extra
// methods (loginLink). Every method ends in completeLogin, which starts a
// session in the Storage and continues to the pending authorization the
// login page was shown for, or to ISSUER/account: never to an address from
// the request. Sessions, pending authorizations and passkey ceremonies live
// in the Storage, so every process serving the issuer sees them; a visitor
// who has not signed in is known by a random cookie that CSRF tokens are
// bound to and that nothing stores.
//
// ISSUER/account (account.go) is the signed-in user's own page: the
// applications that can act for them, each revocable (every grant and
// token of that user for that client, and the remembered consent), their
// passkeys (passkey.go), a password change, and sign-out.
//
// The rules fosite does not give for free live here: S256 PKCE for every
// client, an optional state, iss on every authorization response, loopback
// redirect URIs on any port, RFC 8707 resource as the audience, refresh
// tokens for every authorization-code client (offline_access accepted,
// never required: offline.go), redirect URIs by application_type
// (register.go), refresh token rotation with a grace window
// (refresh_grace.go), and refresh tokens that name their grant under a MAC
// (refresh_binding.go), so that the reuse of a rotated token the storage
// no longer keeps still revokes the grant. A write the Storage cannot make
// now (ErrUnavailable: its disk is full, its database read-only or away) is answered 503
// temporarily_unavailable, without an error line of its own. The issuer may have a path (https://host/mcpd behind
// a prefix proxy): every URL handed out is built from it, the pages' files
// load under it (web.WithBasePath) and the session cookie is named after it. Because anyone can register a
// client, an erroneous authorization request is sent back to its redirect
// URI only after the user has signed in (RFC 9700 §4.11.2), client ID
// metadata documents count towards the client cap and their fetches are
// rate-limited per client address, and codes and refresh tokens are
// exchanged one at a time.
package authz
