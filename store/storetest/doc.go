// Package storetest is the conformance suite for mcpd's fosite storage, in
// the style of dex's storage conformance tests: Run takes a constructor of
// fresh stores and checks, one named subtest per rule, what fosite expects
// of its storage (codes, access and refresh tokens, rotation, revocation by
// request id, PKCE sessions, client-assertion JTIs); RunTransactional adds
// the rules of storage.Transactional.
//
// The suite runs against the bbolt store (package store) and against
// fosite's own storage.NewMemoryStore, which proves that it asks for what
// fosite asks for and nothing more. Rules specific to mcpd's store (secrets
// kept out of the form, the session decoded into the caller's prototype,
// clients, users, notes) are tested in package store itself.
//
// RunLogin checks mcpd's own records of the sign-in flow, which every
// backend keeps: signed-in browser sessions and pending authorization
// requests (expiry, single use, caps against floods). RunIdentities checks
// the records of upstream identity providers: users known by email, linked
// identities, sealed upstream tokens and pending sign-in states. Their
// records are the store package's types, the only mcpd package the suite
// imports.
//
//	func TestConformanceBolt(t *testing.T) {
//		newFixture := func(t *testing.T) storetest.Fixture {
//			s := openTestStore(t)
//			return storetest.Fixture{Storage: s, AddClient: func(t *testing.T, id string) { ... }}
//		}
//		storetest.Run(t, newFixture)
//		storetest.RunTransactional(t, newFixture) // fosite's memory store has no transactions
//	}
package storetest
