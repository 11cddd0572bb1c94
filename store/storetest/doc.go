// Package storetest is the conformance suite of mcpd's storage, in the
// style of dex's storage conformance tests: each entry point takes a
// constructor of fresh stores and checks, one named subtest per rule, what
// a backend must do.
//
//   - Run checks what fosite expects of its storage (codes, access and
//     refresh tokens, rotation, revocation by request id, PKCE sessions,
//     client-assertion JTIs); RunTransactional adds the rules of
//     storage.Transactional. Run runs against fosite's own
//     storage.NewMemoryStore too (which has no transactions), proving
//     that it asks for what fosite asks for and nothing more.
//   - RunBackend checks every method of store.Backend, the seam that the
//     bbolt store (package store) and the PostgreSQL store
//     (store/postgres) implement: users, clients, consents, notes, grants
//     and revocation, token lookups, successors, single-use codes and
//     rotation races, JTIs, secrets, LockKey, the janitor, transactions.
//     A method added to store.Backend gets its rules here, so every
//     backend proves it implements it.
//
// RunLogin checks mcpd's own records of the sign-in flow, which every
// backend keeps: signed-in browser sessions and pending authorization
// requests (expiry, single use, caps against floods); RunSubjectGrants the
// listing and revocation of a user's grants per client; RunProofJTIs the
// DPoP proof records; RunIdentities the records of upstream identity
// providers: users known by email, linked identities, sealed upstream
// tokens and pending sign-in states.
//
// Rules specific to one backend (bbolt's file, group commit and journal;
// PostgreSQL's migrations and listener) are tested in that backend's
// package. The package imports no other mcpd package than store.
//
//	func TestConformanceBolt(t *testing.T) {
//		newFixture := func(t *testing.T) storetest.Fixture {
//			s := openTestStore(t)
//			return storetest.Fixture{Storage: s, AddClient: func(t *testing.T, id string) { ... }}
//		}
//		storetest.Run(t, newFixture)
//		storetest.RunTransactional(t, newFixture) // fosite's memory store has no transactions
//		storetest.RunBackend(t, func(t *testing.T, now func() time.Time) store.Backend { ... })
//	}
package storetest
