package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// LoginSession is a signed-in browser session. The store keeps it under ID,
// which its caller derives from the session cookie (a hash of it): the
// store never sees a cookie, so a copy of the file holds no usable one.
type LoginSession struct {
	ID        string
	User      string
	Method    string // how the user signed in, e.g. password, passkey
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time // the session ends here unless touched
}

type sessionRecord struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Method    string    `json:"method,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateSession stores a new session. ErrAlreadyExists when the ID is
// taken. When max or more sessions exist, it first makes room: expired
// sessions go, then, until fewer than nine tenths of max remain, those of
// the users holding the most, each user's closest to expiry (the least
// recently seen) first, so one account signing in again and again ends its
// own sessions rather than other people's. max ≤ 0 means no cap.
func (s *Store) CreateSession(ctx context.Context, sess LoginSession, max int) error {
	if err := CheckSession(sess); err != nil {
		return err
	}
	sess.CreatedAt = utcOrNow(sess.CreatedAt, s.now)
	sess.LastSeen = utcOrNow(sess.LastSeen, s.now)
	sess.ExpiresAt = sess.ExpiresAt.UTC()
	v, err := encodeExpiring(sess.ExpiresAt, sessionRecord(sess))
	if err != nil {
		return fmt.Errorf("store: encode session: %w", err)
	}
	now := s.now()
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketSessions)
		if old := b.Get([]byte(sess.ID)); old != nil && !isExpired(old, now) {
			return ErrAlreadyExists
		}
		if err := makeRoomFair(b, max, now, sessionUser); err != nil {
			return err
		}
		return b.Put([]byte(sess.ID), v)
	})
}

// GetSession returns the session of id, or ErrNotFound when there is none
// or it has expired.
func (s *Store) GetSession(ctx context.Context, id string) (LoginSession, error) {
	now := s.now()
	var out LoginSession
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketSessions).Get([]byte(id))
		if v == nil || isExpired(v, now) {
			return ErrNotFound
		}
		var err error
		out, err = decodeSession(v)
		return err
	})
	return out, err
}

// TouchSession records that the session of id was seen at lastSeen and
// moves its expiry to expiresAt. ErrNotFound when there is no live session
// of id.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error {
	now := s.now()
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketSessions)
		v := b.Get([]byte(id))
		if v == nil || isExpired(v, now) {
			return ErrNotFound
		}
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		sess.LastSeen, sess.ExpiresAt = lastSeen.UTC(), expiresAt.UTC()
		nv, err := encodeExpiring(sess.ExpiresAt, sessionRecord(sess))
		if err != nil {
			return fmt.Errorf("store: encode session: %w", err)
		}
		return b.Put([]byte(id), nv)
	})
}

// DeleteSession ends the session of id. ErrNotFound when there is none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketSessions)
		if b.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// DeleteUserSessions ends every session of user except the one of keep
// ("" keeps none) and returns how many it ended.
func (s *Store) DeleteUserSessions(ctx context.Context, user, keep string) (int, error) {
	var n int
	err := s.update(ctx, func(tx *wtx) error {
		var err error
		n, err = deleteUserSessions(tx, user, keep)
		return err
	})
	return n, err
}

func deleteUserSessions(tx *wtx, user, keep string) (int, error) {
	b := tx.bucket(bucketSessions)
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		if sess.User == user && string(k) != keep {
			keys = append(keys, []byte(string(k)))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sessionUser is the owner of a stored session, for makeRoomFair; "" for
// a record it cannot read, which must not stop sign-ins.
func sessionUser(v []byte) string {
	sess, err := decodeSession(v)
	if err != nil {
		return ""
	}
	return sess.User
}

func decodeSession(v []byte) (LoginSession, error) {
	var rec sessionRecord
	if err := decodeExpiring(v, &rec); err != nil {
		return LoginSession{}, fmt.Errorf("store: decode session: %w", err)
	}
	return LoginSession(rec), nil
}

// PendingAuthorization is an authorization request waiting for the user to
// sign in or decide on the consent page. Form is the request's query,
// URL-encoded; it carries no secret.
type PendingAuthorization struct {
	ID        string
	ClientID  string
	Form      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

type pendingRecord struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Form      string    `json:"form"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PutPendingAuthorization stores p, replacing one of the same ID. When max
// or more pending authorizations exist, it first makes room as
// CreateSession does: expired ones go, then the oldest. max ≤ 0 means no
// cap.
func (s *Store) PutPendingAuthorization(ctx context.Context, p PendingAuthorization, max int) error {
	if p.ID == "" || p.ExpiresAt.IsZero() {
		return errors.New("store: a pending authorization needs an id and an expiry")
	}
	p.CreatedAt = utcOrNow(p.CreatedAt, s.now)
	p.ExpiresAt = p.ExpiresAt.UTC()
	v, err := encodeExpiring(p.ExpiresAt, pendingRecord(p))
	if err != nil {
		return fmt.Errorf("store: encode pending authorization: %w", err)
	}
	now := s.now()
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketPending)
		if b.Get([]byte(p.ID)) == nil {
			if err := makeRoom(b, max, now); err != nil {
				return err
			}
		}
		return b.Put([]byte(p.ID), v)
	})
}

// GetPendingAuthorization returns the pending authorization of id, or
// ErrNotFound when there is none or it has expired.
func (s *Store) GetPendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error) {
	now := s.now()
	var out PendingAuthorization
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketPending).Get([]byte(id))
		if v == nil || isExpired(v, now) {
			return ErrNotFound
		}
		var err error
		out, err = decodePending(v)
		return err
	})
	return out, err
}

// TakePendingAuthorization removes the pending authorization of id and
// returns it; ErrNotFound when there is none or it has expired. Of two
// takes of one id, only one gets it.
func (s *Store) TakePendingAuthorization(ctx context.Context, id string) (PendingAuthorization, error) {
	now := s.now()
	var out PendingAuthorization
	err := s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketPending)
		v := b.Get([]byte(id))
		if v == nil || isExpired(v, now) {
			return ErrNotFound // an expired one is the janitor's to remove
		}
		var err error
		if out, err = decodePending(v); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
	return out, err
}

func decodePending(v []byte) (PendingAuthorization, error) {
	var rec pendingRecord
	if err := decodeExpiring(v, &rec); err != nil {
		return PendingAuthorization{}, fmt.Errorf("store: decode pending authorization: %w", err)
	}
	return PendingAuthorization(rec), nil
}
