package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Secret returns the random key stored under name, creating it with size
// bytes from crypto/rand on first use. Every later call returns the same
// bytes (whatever size it asks for), so tokens signed with it survive a
// restart.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if name == "" || size <= 0 {
		return nil, fmt.Errorf("store: secret needs a name and a positive size")
	}
	key := []byte("secret:" + name)
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = bytes.Clone(bucket(tx, bucketMeta).Get(key))
		return nil
	})
	if err != nil || out != nil {
		return out, err
	}
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("store: read random secret: %w", err)
	}
	err = s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketMeta)
		if v := b.Get(key); v != nil { // another caller won the race
			out = bytes.Clone(v)
			return nil
		}
		out = fresh
		return b.Put(key, fresh)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
