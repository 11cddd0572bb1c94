// Package store keeps everything mcpd persists in one bbolt file,
// DATA/mcpd.db: OAuth clients, users, remembered consents, notes, and every
// record fosite needs (authorization codes, access and refresh tokens, PKCE
// sessions, client-assertion JTIs), plus the sealed refresh successors of the
// grace window and the server's own random keys.
//
// A *Store satisfies fosite.ClientManager, oauth2.CoreStorage,
// oauth2.TokenRevocationStorage, pkce.PKCERequestStorage and
// storage.Transactional. Fosite requests are stored as flat records keyed by
// the SHA-256 of the token signature, never by a token; the form is stored
// without secrets, and the session as JSON that is decoded into the session
// the caller passes in. An index from request id to every signature of a
// grant makes revocation a prefix scan.
//
// BeginTX opens a writable bbolt transaction and carries it in the returned
// context; every method called with that context runs inside it. A second
// BeginTX on that context nests (its Commit does nothing, its Rollback dooms
// the outer transaction). While a goroutine holds an open transaction,
// every write it makes must use the context that carries it: bbolt allows
// one writer, and a write through another context would wait for itself
// (reads are safe either way). Close waits for open transactions.
//
// Writes outside a transaction are durable when they return. A write that
// runs alone commits at once; writes that overlap share one commit through
// bbolt's Batch (Options.MaxBatchDelay).
//
// The package owns the file format and its migrations. It must not import
// any other mcpd package; the consumers (authz, mcp) declare the interfaces
// they need and cmd/mcpd adapts a *Store to them. It never logs a token,
// code, secret or password.
//
//	s, err := store.Open(dataDir, &store.Options{Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	go s.RunJanitor(ctx, 10*time.Minute)
package store
