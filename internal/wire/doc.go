// Package wire adapts the storage seam, store.Backend (the bbolt store or
// store/postgres), to the interfaces that authz and mcp declare:
// AuthzStorage for authz.Storage (and authz.IdentityStore), NotesStore for
// mcp.NotesStore and ProofStore for dpop.ReplayStore; and the DPoP proof
// checker to mcp.ProofChecker (ProofChecker). For identity providers it
// adapts the idp connectors to authz.Connector, the store to vault.Store,
// and the vault to mcp.UserTokens and authz.UpstreamTokenSaver. There is
// one adapter for every backend: a second database is a second
// store.Backend, never a second copy of this package. The two sides'
// record types mirror each other field for field, so the conversions are
// plain type conversions and a field added on one side only fails to
// compile here.
//
// A store write that fails for want of disk (store.ErrUnavailable) becomes
// the consumer's own ErrUnavailable, so authz answers 503 and mcp a tool
// error without knowing the store.
//
// It is the one piece of wiring shared by cmd/mcpd, the program, and
// bench/loadgen, which hosts the same handlers in-process for side-by-side
// measurements. It holds no state and makes no decisions of its own.
package wire
