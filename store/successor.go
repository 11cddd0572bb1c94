package store

import (
	"bytes"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutRefreshSuccessor keeps, until expiresAt, the sealed token response
// that rotating the refresh token oldSignature produced. The store keys it
// by the signature's hash and treats sealed as opaque bytes.
func (s *Store) PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error {
	if expiresAt.IsZero() {
		return errors.New("store: a refresh successor needs an expiry")
	}
	v := append(expiryPrefix(expiresAt), sealed...)
	key := sighash(oldSignature)
	return s.update(ctx, func(tx *wtx) error {
		return tx.bucket(bucketSuccessors).Put(key, v)
	})
}

// GetRefreshSuccessor returns the sealed successor of oldSignature, or
// ErrNotFound when there is none or it has expired.
func (s *Store) GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error) {
	now := s.now()
	var sealed []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketSuccessors).Get(sighash(oldSignature))
		if v == nil {
			return ErrNotFound
		}
		if exp, ok := expiryOf(v); !ok || !now.Before(exp) {
			return ErrNotFound
		}
		sealed = bytes.Clone(v[8:])
		return nil
	})
	return sealed, err
}
