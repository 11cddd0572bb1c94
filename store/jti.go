package store

import (
	"context"
	"time"

	"github.com/ory/fosite"
	bolt "go.etcd.io/bbolt"
)

// ClientAssertionJWTValid returns fosite.ErrJTIKnown when jti was seen and
// has not expired, and nil otherwise.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	now := s.now()
	return s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketJTIs).Get(sighash(jti))
		if exp, ok := expiryOf(v); ok && now.Before(exp) {
			return fosite.ErrJTIKnown
		}
		return nil
	})
}

// SetClientAssertionJWT records jti until exp; fosite.ErrJTIKnown when it
// is already recorded and unexpired. The janitor removes expired ones.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	now := s.now()
	key := sighash(jti)
	v := expiryPrefix(exp)
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketJTIs)
		if old, ok := expiryOf(b.Get(key)); ok && now.Before(old) {
			return fosite.ErrJTIKnown
		}
		return b.Put(key, v)
	})
}
