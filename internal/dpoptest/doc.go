// Package dpoptest holds what the tests of several packages need to speak
// DPoP (RFC 9449) as a client: a key that signs proofs, the claims of a
// fresh proof, the ath of a token, and a replay cache in memory for a
// dpop.Checker.
//
// It is test code: only _test.go files import it, never the server. It
// signs with go-jose, the library the server verifies with, and builds
// wrong proofs only when a test asks for them (headers that replace or
// drop parameters).
package dpoptest
