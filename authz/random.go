package authz

import (
	"crypto/rand"
	"encoding/base64"
)

// randomToken returns n random bytes from crypto/rand, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
