package authz

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
)

// randomToken returns n random bytes from crypto/rand, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newClientID returns a fresh client id: 16 random bytes in lower-case hex.
// Hex, unlike base64url, never starts with "-", so an id can be passed to
// `mcpd client revoke ID` without being read as a flag.
func newClientID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
