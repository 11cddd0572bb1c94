package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpd/mcpd/store"
)

// The sign-in state lives in the database so that a person may sign in on
// one replica, consent on another and come back to a third: sessions,
// pending authorizations and WebAuthn ceremonies, each capped against
// floods as package store caps them.

func utcOrNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		return now().UTC()
	}
	return t.UTC()
}

// makeRoom keeps table (sessions, pending_authorizations or
// webauthn_sessions) under max rows before one is added, as package store
// does: when it holds max or more, the expired rows go, then those closest
// to their expiry until store.RoomToKeep(max) remain. max ≤ 0 means no cap.
// Two replicas at the cap at once may both make room; the cap holds.
func (s *Store) makeRoom(ctx context.Context, q querier, table string, max int, now time.Time) error {
	return s.makeRoomFair(ctx, q, table, "", max, now)
}

// makeRoomFair is makeRoom for a table whose rows have an owner (column
// owner, "" for none): past the expired rows, those of whoever holds the
// most go first, each owner's closest to expiry first, as package store
// orders sessions, so one user signing in again and again ends only their
// own.
func (s *Store) makeRoomFair(ctx context.Context, q querier, table, owner string, max int, now time.Time) error {
	if max <= 0 {
		return nil
	}
	var full bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" OFFSET $1)", max-1).Scan(&full); err != nil || !full {
		return err
	}
	if _, err := q.Exec(ctx, "DELETE FROM "+table+" WHERE expires_at <= $1", now); err != nil {
		return err
	}
	rank := "0"
	if owner != "" {
		rank = "row_number() OVER (PARTITION BY " + owner + " ORDER BY expires_at DESC, id DESC)"
	}
	_, err := q.Exec(ctx, "DELETE FROM "+table+" WHERE id IN (SELECT id FROM (SELECT id, expires_at, "+rank+" AS rank FROM "+table+
		") r ORDER BY rank DESC, expires_at, id LIMIT greatest(0, (SELECT count(*) FROM "+table+") - $1))", store.RoomToKeep(max))
	return err
}

// CreateSession stores a new session. store.ErrAlreadyExists when a live
// session has the ID. When max or more sessions exist, it first makes room:
// expired sessions go, then those of the users holding the most, each
// user's closest to expiry (the least recently seen) first. max ≤ 0 means
// no cap.
func (s *Store) CreateSession(ctx context.Context, sess store.LoginSession, max int) error {
	if err := store.CheckSession(sess); err != nil {
		return err
	}
	if !textOK(sess.ID) || !textOK(sess.User) {
		return errors.New("postgres: a session's id and user must be UTF-8 text")
	}
	sess.CreatedAt = utcOrNow(sess.CreatedAt, s.now)
	sess.LastSeen = utcOrNow(sess.LastSeen, s.now)
	sess.ExpiresAt = sess.ExpiresAt.UTC()
	data, err := store.EncodeSession(sess)
	if err != nil {
		return err
	}
	now := s.now()
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		if err := s.makeRoomFair(ctx, q, "sessions", "user_name", max, now); err != nil {
			return err
		}
		tag, err := q.Exec(ctx, `
			INSERT INTO sessions (id, user_name, expires_at, data) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET user_name = EXCLUDED.user_name, expires_at = EXCLUDED.expires_at, data = EXCLUDED.data
			WHERE sessions.expires_at <= $5`,
			sess.ID, sess.User, sess.ExpiresAt, data, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	})
}

// GetSession returns the session of id, or store.ErrNotFound when there is
// none or it has expired.
func (s *Store) GetSession(ctx context.Context, id string) (store.LoginSession, error) {
	data, err := s.liveData(ctx, "SELECT data FROM sessions WHERE id = $1 AND expires_at > $2", id)
	if err != nil {
		return store.LoginSession{}, err
	}
	return store.DecodeSession(data)
}

// TouchSession records that the session of id was seen at lastSeen and
// moves its expiry to expiresAt. store.ErrNotFound when there is no live
// session of id.
func (s *Store) TouchSession(ctx context.Context, id string, lastSeen, expiresAt time.Time) error {
	if !textOK(id) {
		return store.ErrNotFound
	}
	now := s.now()
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		if err := q.QueryRow(ctx, "SELECT data FROM sessions WHERE id = $1 AND expires_at > $2 FOR UPDATE", id, now).Scan(&data); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		sess, err := store.DecodeSession(data)
		if err != nil {
			return err
		}
		sess.LastSeen, sess.ExpiresAt = lastSeen.UTC(), expiresAt.UTC()
		if data, err = store.EncodeSession(sess); err != nil {
			return err
		}
		return s.deferExec(ctx, "UPDATE sessions SET expires_at = $2, data = $3 WHERE id = $1", id, sess.ExpiresAt, data)
	})
}

// DeleteSession ends the session of id. store.ErrNotFound when there is
// none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if !textOK(id) {
		return store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "DELETE FROM sessions WHERE id = $1", id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteUserSessions ends every session of user except the one of keep
// ("" keeps none) and returns how many it ended.
func (s *Store) DeleteUserSessions(ctx context.Context, user, keep string) (int, error) {
	if !textOK(user) || !textOK(keep) {
		return 0, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return 0, err
	}
	tag, err := q.Exec(ctx, "DELETE FROM sessions WHERE user_name = $1 AND id <> $2", user, keep)
	return int(tag.RowsAffected()), err
}

// PutPendingAuthorization stores p, replacing one of the same ID. When max
// or more pending authorizations exist, it first makes room as
// CreateSession does. max ≤ 0 means no cap.
func (s *Store) PutPendingAuthorization(ctx context.Context, p store.PendingAuthorization, max int) error {
	if p.ID == "" || p.ExpiresAt.IsZero() {
		return errors.New("postgres: a pending authorization needs an id and an expiry")
	}
	if !textOK(p.ID) {
		return errors.New("postgres: a pending authorization's id must be UTF-8 text")
	}
	p.CreatedAt = utcOrNow(p.CreatedAt, s.now)
	p.ExpiresAt = p.ExpiresAt.UTC()
	data, err := store.EncodePending(p)
	if err != nil {
		return fmt.Errorf("postgres: encode pending authorization: %w", err)
	}
	now := s.now()
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var exists bool
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pending_authorizations WHERE id = $1)", p.ID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if err := s.makeRoom(ctx, q, "pending_authorizations", max, now); err != nil {
				return err
			}
		}
		return s.deferExec(ctx, `
			INSERT INTO pending_authorizations (id, expires_at, data) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
			p.ID, p.ExpiresAt, data)
	})
}

// GetPendingAuthorization returns the pending authorization of id, or
// store.ErrNotFound when there is none or it has expired.
func (s *Store) GetPendingAuthorization(ctx context.Context, id string) (store.PendingAuthorization, error) {
	data, err := s.liveData(ctx, "SELECT data FROM pending_authorizations WHERE id = $1 AND expires_at > $2", id)
	if err != nil {
		return store.PendingAuthorization{}, err
	}
	return store.DecodePending(data)
}

// TakePendingAuthorization removes the pending authorization of id and
// returns it; store.ErrNotFound when there is none or it has expired. Of
// two takes of one id, on any replicas, only one gets it.
func (s *Store) TakePendingAuthorization(ctx context.Context, id string) (store.PendingAuthorization, error) {
	data, err := s.liveData(ctx, "DELETE FROM pending_authorizations WHERE id = $1 AND expires_at > $2 RETURNING data", id)
	if err != nil {
		return store.PendingAuthorization{}, err
	}
	return store.DecodePending(data)
}

// PutWebAuthnSession keeps the server side of a WebAuthn ceremony between
// its begin and its finish: data is opaque. When max or more are kept,
// expired ones and then the oldest make room, as for sessions.
func (s *Store) PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error {
	if id == "" || expiresAt.IsZero() {
		return errors.New("postgres: a WebAuthn session needs an id and an expiry")
	}
	if !textOK(id) {
		return errors.New("postgres: a WebAuthn session's id must be UTF-8 text")
	}
	now := s.now()
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var exists bool
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM webauthn_sessions WHERE id = $1)", id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if err := s.makeRoom(ctx, q, "webauthn_sessions", max, now); err != nil {
				return err
			}
		}
		return s.deferExec(ctx, `
			INSERT INTO webauthn_sessions (id, expires_at, data) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
			id, expiresAt, data)
	})
}

// TakeWebAuthnSession removes the ceremony data of id and returns it, so a
// ceremony finishes at most once, on whichever replica. store.ErrNotFound
// when there is none or it has expired.
func (s *Store) TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error) {
	data, err := s.liveData(ctx, "DELETE FROM webauthn_sessions WHERE id = $1 AND expires_at > $2 RETURNING data", id)
	if err == nil && data == nil {
		data = []byte{}
	}
	return data, err
}

// liveData runs query on the row id of a table whose rows live until
// their expires_at ($1 the id, $2 now: a SELECT, or a DELETE … RETURNING
// that takes the row) and returns the row's data; store.ErrNotFound when
// no live row has that id.
func (s *Store) liveData(ctx context.Context, query, id string) ([]byte, error) {
	if !textOK(id) {
		return nil, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	if err := q.QueryRow(ctx, query, id, s.now()).Scan(&data); err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	return data, nil
}
