package store

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// proofJTIKey is the key of a DPoP proof record in bucketJTIs: the hash of
// a prefix and the caller's key, so it never meets a client-assertion JTI
// and the file never holds a thumbprint or a jti.
func proofJTIKey(key string) []byte { return sighash("dpop" + sep + key) }

// RememberProofJTI records the DPoP proof key (the proof's key thumbprint
// and jti, as the caller joins them) until exp, so that a replay of the
// proof is refused, across restarts too. It returns ErrAlreadyExists, and
// changes nothing, when the key is recorded already and has not expired.
// Expired records are the janitor's (counted as JTIs).
func (s *Store) RememberProofJTI(ctx context.Context, key string, exp time.Time) error {
	if key == "" || exp.IsZero() {
		return errors.New("store: a proof jti needs a key and an expiry")
	}
	now := s.now()
	k := proofJTIKey(key)
	v := expiryPrefix(exp)
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketJTIs)
		if old, ok := expiryOf(b.Get(k)); ok && now.Before(old) {
			return ErrAlreadyExists
		}
		return b.Put(k, v)
	})
}

// ProofJTIKnown reports whether the DPoP proof key is recorded and has not
// expired, as of the last finished commit.
func (s *Store) ProofJTIKnown(ctx context.Context, key string) (bool, error) {
	now := s.now()
	k := proofJTIKey(key)
	var known bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		exp, ok := expiryOf(bucket(tx, bucketJTIs).Get(k))
		known = ok && now.Before(exp)
		return nil
	})
	return known, err
}
