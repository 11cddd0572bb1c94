package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// secretHasher hashes client secrets and registration access tokens with
// HMAC-SHA256 under a server key. They are 256-bit random values, so a slow
// password hash adds nothing; the key keeps a stolen database from being
// checked offline without the server's secret.
type secretHasher struct{ key []byte }

var errSecretMismatch = errors.New("secret does not match")

// Hash implements fosite.Hasher.
func (h *secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.key)
	m.Write(data)
	return m.Sum(nil), nil
}

// Compare implements fosite.Hasher in constant time.
func (h *secretHasher) Compare(ctx context.Context, hash, data []byte) error {
	got, _ := h.Hash(ctx, data)
	if len(hash) == 0 || subtle.ConstantTimeCompare(got, hash) != 1 {
		return errSecretMismatch
	}
	return nil
}
