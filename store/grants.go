package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ory/fosite"
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
				rec, err := decodeRequest(v)
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

// ListSubjectGrants returns one request per live grant of subject (a user
// name): that of the grant's newest live token, an unexpired access token
// or an active unexpired refresh token, with its session decoded into what
// newSession returns (nil: not decoded). A grant whose client is gone is
// not listed. The request's RequestedAt is when the grant last got a
// token; its session carries what the grant began with.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error) {
	if subject == "" || strings.Contains(subject, sep) {
		return nil, nil
	}
	now := s.now()
	var out []fosite.Requester
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := []byte(subject + sep)
		c := bucket(tx, bucketSubjectGrants).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rec, err := newestLiveToken(tx, string(k[len(prefix):]), now)
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			var sess fosite.Session
			if newSession != nil {
				sess = newSession()
			}
			req, err := s.rebuild(tx, rec, sess)
			if errors.Is(err, fosite.ErrNotFound) {
				continue // its client is gone
			}
			if err != nil {
				return err
			}
			out = append(out, req)
		}
		return nil
	})
	return out, err
}

// newestLiveToken returns the record of the grant's newest live access or
// refresh token, a refresh token winning a tie; nil when it has none.
func newestLiveToken(tx *bolt.Tx, requestID string, now time.Time) (*requestRecord, error) {
	var best *requestRecord
	kinds, keys := grantTokens(tx, requestID, "")
	for i, key := range keys {
		if kinds[i] != kindAccess && kinds[i] != kindRefresh {
			continue
		}
		v := bucket(tx, kindBucket(kinds[i])).Get(key)
		if v == nil || isExpired(v, now) {
			continue
		}
		rec, err := decodeRequest(v)
		if err != nil {
			return nil, err
		}
		if !rec.Active {
			continue
		}
		if best == nil || rec.RequestedAt.After(best.RequestedAt) ||
			(rec.RequestedAt.Equal(best.RequestedAt) && kinds[i] == kindRefresh) {
			best = rec
		}
	}
	return best, nil
}

// RevokeSubjectClientGrants does what RevokeClientGrants does, but only
// for the grants of clientID whose subject is subject: one user cuts off
// one application, and the other users of that application keep theirs.
func (s *Store) RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error) {
	if subject == "" || clientID == "" || strings.Contains(subject, sep) || strings.Contains(clientID, sep) {
		return 0, nil
	}
	var n int
	err := s.update(ctx, func(tx *wtx) error {
		n = 0
		prefix := []byte(subject + sep)
		var ids []string
		c := tx.bucket(bucketSubjectGrants).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			if has(bucket(tx.tx, bucketClientGrants), []byte(clientID+sep+id)) {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			had, err := deleteGrant(tx, id)
			if err != nil {
				return err
			}
			if had {
				n++
			}
			// Index entries of a grant whose records were already gone.
			if err := tx.bucket(bucketSubjectGrants).Delete([]byte(subject + sep + id)); err != nil {
				return err
			}
			if err := tx.bucket(bucketClientGrants).Delete([]byte(clientID + sep + id)); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
