// Package store keeps everything mcpd persists in one bbolt file,
// DATA/mcpd.db: OAuth clients, users, remembered consents, notes, and every
// record fosite needs (authorization codes, access and refresh tokens, PKCE
// sessions, client-assertion JTIs), plus the sealed refresh successors of the
// grace window, the server's own random keys, and the records of sign-in:
// browser sessions (under a hash of the cookie, which the store never sees)
// and pending authorization requests, both expiring and capped.
//
// A *Store satisfies fosite.ClientManager, oauth2.CoreStorage,
// oauth2.TokenRevocationStorage, pkce.PKCERequestStorage and
// storage.Transactional. Fosite requests are stored as flat records keyed by
// the SHA-256 of the token signature, never by a token; the form is stored
// without secrets, and the session as JSON that is decoded into the session
// the caller passes in. An index from request id to every signature of a
// grant makes revocation a prefix scan.
//
// BeginTX opens a writable transaction and carries it in the returned
// context; every method called with that context runs inside it. A second
// BeginTX on that context nests (its Commit does nothing, its Rollback dooms
// the outer transaction). Transactions and writes outside one run one at a
// time, each seeing what the ones before it wrote; while a goroutine holds
// an open transaction, every write it makes must use the context that
// carries it, or it would wait for itself (reads are safe either way).
// Close waits for open transactions.
//
// Every write, in a transaction or not, is durable when it returns (Commit
// for a transaction). Writes share commits through a group commit: a write
// that runs alone commits at once, and writes that overlap commit together,
// with one disk sync, without waiting on a timer (Options.MaxGroup). A
// transaction that rolls back undoes only its own changes. Reads outside a
// transaction see only what finished commits wrote, never the changes of a
// group still being written.
//
// Backend is the storage seam: everything mcpd persists, as one interface
// that *Store implements and a second database implements again
// (store/postgres, for replicas), with this package's record types,
// sentinel errors and encodings (codec.go: the JSON of every record and of
// fosite requests, SigHash, password hashing) shared rather than copied.
// store/storetest is the conformance suite both pass. Export hands a
// *Store's records to another backend's Sink (mcpd migrate-to-postgres).
//
// The package owns the file format and its migrations. It must not import
// any other mcpd package; the consumers (authz, mcp) declare the interfaces
// they need and internal/wire adapts a Backend to them. It never logs a
// token, code, secret or password.
//
//	s, err := store.Open(dataDir, &store.Options{Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	go s.RunJanitor(ctx, 10*time.Minute)
package store
