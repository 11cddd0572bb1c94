// Package mcp serves mcpd's MCP endpoint (/mcp, Streamable HTTP) on the
// go-sdk: its tools, resources and prompt, the bearer middleware with scope
// step-up, the RFC 9728 protected-resource metadata, and the Origin and Host
// checks against DNS rebinding.
//
// A request to /mcp passes, in order: the Host and Origin checks (403), the
// bearer middleware (401 with a challenge), one reading of its JSON-RPC
// body (readInbound), the scope check of tools/call, resources/read and
// prompts/get (403 insufficient_scope; bodies that are not UTF-8, nest
// too deeply or batch too many calls are refused before anything decodes
// them), the per-user caps on sessions and open requests (429), and the
// dispatcher, which hands a 2026-07-28 request to the go-sdk's stateless
// handler (or, when it asks for no notifications, to a third handler that
// answers application/json) and every other to its session handler, all
// over the same sdk.Server (docs/protocol.md says why); the session
// handler binds each session to the token's user. A DPoP-bound token is
// accepted only as "Authorization: DPoP" with a proof the ProofChecker
// accepts; challenges and scope step-up speak the client's scheme.
// A well-formed 2026-07-28 call that asks for no notifications takes the
// direct path instead (direct.go): it is served on one of a few
// long-lived sessions of the same sdk.Server, over a connection of our
// own that carries many requests' calls (multiplex.go), with the caller's
// token in each call, never in the session.
// Tools are declared with their scope in one place, toolRegistry (see
// docs/extending.md); every tool, resource and prompt acts only on the
// notes of the token's user. Config.Extension adds features behind the
// same checks; only the conformance fixture server under e2e/ uses it.
//
// It declares the interfaces it needs (a token verifier, a NotesStore, a
// ProofChecker for DPoP proofs, and UserTokens for upstreams called as the
// signed-in user with the user's own token at an identity provider) and
// imports no other package of mcpd.
// It never issues tokens, never reads a token from anywhere but the
// Authorization header, never forwards a caller's token upstream, never
// hands an upstream token to the client, and never logs one.
//
// Use:
//
//	srv, err := mcp.New(mcp.Config{Issuer: issuer, Verifier: verify, Notes: notes})
//	if err != nil { ... }
//	srv.Register(router) // /mcp and /.well-known/oauth-protected-resource[/mcp]
package mcp
