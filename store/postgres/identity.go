package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mcpd/mcpd/store"
)

var _ store.Identities = (*Store)(nil)

// isUniqueViolation reports whether err is PostgreSQL's unique_violation:
// two replicas claimed one email address at once.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// CreateExternalUser adds a user who has no password and signs in only
// through an identity provider, with email as the user's address.
// store.ErrAlreadyExists when the name or the email is taken;
// store.ErrInvalidUser or store.ErrInvalidEmail for a bad name or address.
func (s *Store) CreateExternalUser(ctx context.Context, name, email string) error {
	if !store.ValidUserName(name) {
		return store.ErrInvalidUser
	}
	e, err := store.NormalizeEmail(email)
	if err != nil {
		return err
	}
	if !textOK(name) || !textOK(e) {
		return store.ErrInvalidUser
	}
	now := s.now().UTC()
	data, err := store.EncodeUser(store.User{Name: name, Email: e, CreatedAt: now, UpdatedAt: now}, "")
	if err != nil {
		return err
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	// DO NOTHING covers both unique keys: the name and the email.
	tag, err := q.Exec(ctx, "INSERT INTO users (name, email, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", name, e, data)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// SetUserEmail sets the email address of a user; "" removes it. An address
// belongs to at most one user: store.ErrAlreadyExists when another user has
// it. store.ErrNotFound for an unknown user, store.ErrInvalidEmail for a bad
// address.
func (s *Store) SetUserEmail(ctx context.Context, name, email string) error {
	var e string
	if strings.TrimSpace(email) != "" {
		var err error
		if e, err = store.NormalizeEmail(email); err != nil {
			return err
		}
		if !textOK(e) {
			return store.ErrInvalidEmail
		}
	}
	if !textOK(name) {
		return store.ErrNotFound
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
		if e != "" {
			var taken bool
			if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND name <> $2)", e, name).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return store.ErrAlreadyExists
			}
		}
		u, hash, err := store.DecodeUser(data)
		if err != nil {
			return err
		}
		u.Email, u.UpdatedAt = e, now
		if data, err = store.EncodeUser(u, hash); err != nil {
			return err
		}
		var col *string
		if e != "" {
			col = &e
		}
		_, err = q.Exec(ctx, "UPDATE users SET email = $2, data = $3 WHERE name = $1", name, col, data)
		if isUniqueViolation(err) {
			return store.ErrAlreadyExists // another replica gave it to someone meanwhile
		}
		return err
	})
}

// LookupUserByEmail returns the name of the user whose address is email
// (compared without regard to case). store.ErrNotFound when no user has it.
func (s *Store) LookupUserByEmail(ctx context.Context, email string) (string, error) {
	e, err := store.NormalizeEmail(email)
	if err != nil || !textOK(e) {
		return "", store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return "", err
	}
	var name string
	if err := q.QueryRow(ctx, "SELECT name FROM users WHERE email = $1", e).Scan(&name); err != nil {
		return "", notFound(err, store.ErrNotFound)
	}
	return name, nil
}

// LinkIdentity links id.Issuer and id.Subject to the user id.User.
// store.ErrAlreadyExists when that identity is linked already (to anyone);
// store.ErrNotFound when the user does not exist. CreatedAt defaults to
// now.
func (s *Store) LinkIdentity(ctx context.Context, id store.Identity) error {
	if err := store.CheckIdentity(id); err != nil {
		return err
	}
	if !textOK(id.Issuer) || !textOK(id.Subject) || !textOK(id.Provider) || !textOK(id.Email) {
		return errors.New("postgres: an identity's fields must be UTF-8 text")
	}
	if !textOK(id.User) {
		return store.ErrNotFound
	}
	if id.CreatedAt.IsZero() {
		id.CreatedAt = s.now().UTC()
	}
	data, err := store.EncodeIdentity(id)
	if err != nil {
		return err
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var one int
		if err := q.QueryRow(ctx, "SELECT 1 FROM users WHERE name = $1 FOR SHARE", id.User).Scan(&one); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		tag, err := q.Exec(ctx, "INSERT INTO identities (issuer, subject, user_name, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
			id.Issuer, id.Subject, id.User, data)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	})
}

// LookupIdentity returns the identity of subject at issuer.
// store.ErrNotFound when it is linked to no user.
func (s *Store) LookupIdentity(ctx context.Context, issuer, subject string) (store.Identity, error) {
	if issuer == "" || subject == "" || !textOK(issuer) || !textOK(subject) {
		return store.Identity{}, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return store.Identity{}, err
	}
	var data []byte
	if err := q.QueryRow(ctx, "SELECT data FROM identities WHERE issuer = $1 AND subject = $2", issuer, subject).Scan(&data); err != nil {
		return store.Identity{}, notFound(err, store.ErrNotFound)
	}
	return store.DecodeIdentity(data)
}

// ListIdentities returns the identities linked to user, sorted by issuer
// and subject (byte order); none for an unknown user.
func (s *Store) ListIdentities(ctx context.Context, user string) ([]store.Identity, error) {
	if user == "" || !textOK(user) {
		return nil, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT data FROM identities WHERE user_name = $1 ORDER BY issuer COLLATE "C", subject COLLATE "C"`, user)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Identity, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return store.Identity{}, err
		}
		return store.DecodeIdentity(data)
	})
	if len(out) == 0 {
		return nil, err
	}
	return out, err
}

// UnlinkIdentities deletes the identities linked to user through the
// provider named provider, with the user's upstream token at it, and
// returns how many identities it deleted. store.ErrNotFound for an unknown
// user.
func (s *Store) UnlinkIdentities(ctx context.Context, user, provider string) (int, error) {
	if !textOK(user) {
		return 0, store.ErrNotFound
	}
	n := 0
	err := s.update(ctx, func(ctx context.Context) error {
		n = 0
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var one int
		if err := q.QueryRow(ctx, "SELECT 1 FROM users WHERE name = $1 FOR SHARE", user).Scan(&one); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		if !textOK(provider) {
			return nil
		}
		tag, err := q.Exec(ctx, "DELETE FROM identities WHERE user_name = $1 AND data->>'provider' = $2", user, provider)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		_, err = q.Exec(ctx, "DELETE FROM upstream_tokens WHERE user_name = $1 AND provider = $2", user, provider)
		return err
	})
	return n, err
}

// PutUpstreamToken keeps sealed, the user's token at the identity provider
// provider, replacing the one kept before. sealed is opaque; the caller
// seals it. store.ErrNotFound when the user does not exist, so a token
// never outlives its user.
func (s *Store) PutUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error {
	if user == "" || provider == "" || strings.Contains(user, "\x00") || strings.Contains(provider, "\x00") || len(sealed) == 0 {
		return errors.New("postgres: an upstream token needs a user, a provider and sealed bytes")
	}
	if !textOK(user) || !textOK(provider) {
		return store.ErrNotFound
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var one int
		if err := q.QueryRow(ctx, "SELECT 1 FROM users WHERE name = $1 FOR SHARE", user).Scan(&one); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		return s.deferExec(ctx, `
			INSERT INTO upstream_tokens (user_name, provider, sealed) VALUES ($1, $2, $3)
			ON CONFLICT (user_name, provider) DO UPDATE SET sealed = EXCLUDED.sealed`, user, provider, sealed)
	})
}

// GetUpstreamToken returns the sealed token PutUpstreamToken kept for the
// user at provider. store.ErrNotFound when there is none.
func (s *Store) GetUpstreamToken(ctx context.Context, user, provider string) ([]byte, error) {
	if !textOK(user) || !textOK(provider) {
		return nil, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if err := q.QueryRow(ctx, "SELECT sealed FROM upstream_tokens WHERE user_name = $1 AND provider = $2", user, provider).Scan(&sealed); err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	return sealed, nil
}

// DeleteUpstreamToken forgets the user's token at provider; forgetting one
// that is not kept is not an error.
func (s *Store) DeleteUpstreamToken(ctx context.Context, user, provider string) error {
	if !textOK(user) || !textOK(provider) {
		return nil
	}
	return s.deferExec(ctx, "DELETE FROM upstream_tokens WHERE user_name = $1 AND provider = $2", user, provider)
}

// PutIDPState keeps data, the server's record of a sign-in started at an
// identity provider, under state until expiresAt, keyed by the hash of
// state. store.ErrAlreadyExists when the state is in use.
func (s *Store) PutIDPState(ctx context.Context, state string, data []byte, expiresAt time.Time) error {
	if state == "" || expiresAt.IsZero() {
		return errors.New("postgres: a sign-in state needs a value and an expiry")
	}
	if data == nil {
		data = []byte{}
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "INSERT INTO idp_states (key, expires_at, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		store.SigHash(state), expiresAt, data)
	if err != nil {
		return fmt.Errorf("postgres: sign-in state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// TakeIDPState returns the data kept under state and deletes it, so a
// state is used at most once, on whichever replica the provider's answer
// reaches. store.ErrNotFound when there is none, it was taken already, or
// it has expired.
func (s *Store) TakeIDPState(ctx context.Context, state string) ([]byte, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	var exp time.Time
	err = q.QueryRow(ctx, "DELETE FROM idp_states WHERE key = $1 RETURNING data, expires_at", store.SigHash(state)).Scan(&data, &exp)
	if err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	if !s.now().Before(exp) {
		return nil, store.ErrNotFound
	}
	return data, nil
}

// ImportIdentity is store.Sink's: a linked identity as it was.
func (im importer) ImportIdentity(ctx context.Context, id store.Identity) error {
	data, err := store.EncodeIdentity(id)
	if err != nil {
		return err
	}
	return im.exec(ctx, "INSERT INTO identities (issuer, subject, user_name, data) VALUES ($1, $2, $3, $4)", id.Issuer, id.Subject, id.User, data)
}

// ImportUpstreamToken is store.Sink's: a sealed upstream token as it was.
func (im importer) ImportUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error {
	return im.exec(ctx, "INSERT INTO upstream_tokens (user_name, provider, sealed) VALUES ($1, $2, $3)", user, provider, sealed)
}
