package store

import (
	"bytes"
	"context"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// RevokeClientGrants deletes every code, access token, refresh token and
// PKCE session of every grant of clientID, and returns how many grants it
// ended. The client's next use of any of its tokens finds nothing.
func (s *Store) RevokeClientGrants(ctx context.Context, clientID string) (int, error) {
	var n int
	err := s.update(ctx, func(tx *wtx) error {
		var err error
		n, err = revokeIndexed(tx, bucketClientGrants, clientID)
		return err
	})
	return n, err
}

// RevokeSubjectGrants does what RevokeClientGrants does for every grant
// whose session subject is subject (a user name).
func (s *Store) RevokeSubjectGrants(ctx context.Context, subject string) (int, error) {
	var n int
	err := s.update(ctx, func(tx *wtx) error {
		var err error
		n, err = revokeIndexed(tx, bucketSubjectGrants, subject)
		return err
	})
	return n, err
}

// revokeIndexed deletes every grant listed under owner in an index bucket
// (client or subject) and the index entries themselves.
func revokeIndexed(tx *wtx, index string, owner string) (int, error) {
	if owner == "" || strings.Contains(owner, sep) {
		return 0, nil
	}
	prefix := []byte(owner + sep)
	var ids []string
	var keys [][]byte
	c := tx.bucket(index).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
		keys = append(keys, bytes.Clone(k))
	}
	n := 0
	for _, id := range ids {
		had, err := deleteGrant(tx, id)
		if err != nil {
			return 0, err
		}
		if had {
			n++
		}
	}
	for _, k := range keys {
		if err := tx.bucket(index).Delete(k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// LiveGrants counts, per client id, the grants that have a live token: an
// access token not yet expired, or an active refresh token not yet expired.
func (s *Store) LiveGrants(ctx context.Context) (map[string]int, error) {
	now := s.now()
	live := map[string]map[string]bool{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, b := range []string{bucketAccess, bucketRefresh} {
			err := bucket(tx, b).ForEach(func(_, v []byte) error {
				if exp, ok := expiryOf(v); ok && !now.Before(exp) {
					return nil
				}
				rec, err := peekRequest(v)
				if err != nil {
					return err
				}
				if !rec.Active {
					return nil
				}
				if live[rec.ClientID] == nil {
					live[rec.ClientID] = map[string]bool{}
				}
				live[rec.ClientID][rec.ID] = true
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(live))
	for id, grants := range live {
		counts[id] = len(grants)
	}
	return counts, nil
}
