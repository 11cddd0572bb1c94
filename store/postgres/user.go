package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/mcpd/mcpd/store"
)

// CreateUser adds a user with an argon2id hash of password.
// store.ErrAlreadyExists when the name is taken; store.ErrInvalidUser for
// an empty name or password or a name with white space or ':'.
func (s *Store) CreateUser(ctx context.Context, name, password string) error {
	if err := store.CheckNewUser(name, password); err != nil {
		return err
	}
	if exists, err := s.UserExists(ctx, name); err != nil {
		return err
	} else if exists {
		return store.ErrAlreadyExists
	}
	hash, err := store.HashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	data, err := store.EncodeUser(store.User{Name: name, CreatedAt: now, UpdatedAt: now}, hash)
	if err != nil {
		return err
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "INSERT INTO users (name, data) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, data)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// SetPassword replaces a user's password. store.ErrNotFound for an unknown
// user.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if password == "" {
		return store.ErrInvalidUser
	}
	if !textOK(name) {
		return store.ErrNotFound
	}
	hash, err := store.HashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		if err := q.QueryRow(ctx, "SELECT data FROM users WHERE name = $1 FOR UPDATE", name).Scan(&data); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		u, _, err := store.DecodeUser(data)
		if err != nil {
			return err
		}
		u.UpdatedAt = now
		if data, err = store.EncodeUser(u, hash); err != nil {
			return err
		}
		_, err = q.Exec(ctx, "UPDATE users SET data = $2 WHERE name = $1", name, data)
		return err
	})
}

// DeleteUser removes a user, ends every grant whose subject is that user
// and every login session of theirs, and deletes the user's passkeys,
// consents, notes, linked identities, email address and upstream tokens.
// store.ErrNotFound for an unknown user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if !textOK(name) {
		return store.ErrNotFound
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		tag, err := q.Exec(ctx, "DELETE FROM users WHERE name = $1", name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if _, err := s.revokeGrantsWhere(ctx, "subject = $1", name); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, "DELETE FROM sessions WHERE user_name = $1", name); err != nil {
			return err
		}
		for _, table := range []string{"passkeys", "identities", "upstream_tokens"} {
			if _, err := q.Exec(ctx, "DELETE FROM "+table+" WHERE user_name = $1", name); err != nil {
				return err
			}
		}
		if _, err := q.Exec(ctx, "DELETE FROM consents WHERE user_name = $1", name); err != nil {
			return err
		}
		_, err = q.Exec(ctx, "DELETE FROM notes WHERE owner = $1", name)
		return err
	})
}

// ListUsers returns every user, sorted by name (byte order, as in Go).
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT data FROM users ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.User, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return store.User{}, err
		}
		u, _, err := store.DecodeUser(data)
		return u, err
	})
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	return s.count(ctx, "SELECT count(*) FROM users")
}

// UserExists reports whether a user of that name exists.
func (s *Store) UserExists(ctx context.Context, name string) (bool, error) {
	if !textOK(name) {
		return false, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	err = q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)", name).Scan(&ok)
	return ok, err
}

// Authenticate returns nil when password is the user's, and
// store.ErrBadCredentials otherwise. An unknown user, and a user without a
// password, cost one argon2id run too, so the answer takes the same time
// either way.
func (s *Store) Authenticate(ctx context.Context, name, password string) error {
	hash, err := s.passwordHash(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && hash == "") {
		// An unknown user, or one without a password (signed up through
		// an identity provider), costs what a wrong password costs.
		store.BurnPassword(password)
		return store.ErrBadCredentials
	}
	if err != nil {
		return err
	}
	return store.CheckPassword(hash, password)
}

// HasPassword reports whether the user has a password; a user created
// through an identity provider may have none. store.ErrNotFound for an
// unknown user.
func (s *Store) HasPassword(ctx context.Context, name string) (bool, error) {
	hash, err := s.passwordHash(ctx, name)
	return hash != "", err
}

func (s *Store) passwordHash(ctx context.Context, name string) (string, error) {
	if name == "" || !textOK(name) {
		return "", store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return "", err
	}
	var data []byte
	if err := q.QueryRow(ctx, "SELECT data FROM users WHERE name = $1", name).Scan(&data); err != nil {
		return "", notFound(err, store.ErrNotFound)
	}
	_, hash, err := store.DecodeUser(data)
	return hash, err
}
