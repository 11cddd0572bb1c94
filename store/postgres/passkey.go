package postgres

import (
	"bytes"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/mcpd/mcpd/store"
)

// CreatePasskey stores a new passkey of p.User. store.ErrNotFound when
// there is no such user; store.ErrAlreadyExists when a passkey of that ID
// exists (of any user). CreatedAt defaults to now. The user's row is held
// for share meanwhile, so a user removed at the same time takes the
// passkey along.
func (s *Store) CreatePasskey(ctx context.Context, p store.Passkey) error {
	if err := store.CheckPasskey(p); err != nil {
		return err
	}
	if !textOK(p.User) {
		return store.ErrNotFound
	}
	p.CreatedAt = utcOrNow(p.CreatedAt, s.now)
	p.LastUsedAt = p.LastUsedAt.UTC()
	data, err := store.EncodePasskey(p)
	if err != nil {
		return err
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var one int
		if err := q.QueryRow(ctx, "SELECT 1 FROM users WHERE name = $1 FOR SHARE", p.User).Scan(&one); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		tag, err := q.Exec(ctx, "INSERT INTO passkeys (id, user_name, data) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", p.ID, p.User, data)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrAlreadyExists
		}
		return nil
	})
}

// GetPasskey returns the passkey of a credential ID, or store.ErrNotFound.
func (s *Store) GetPasskey(ctx context.Context, id []byte) (store.Passkey, error) {
	if len(id) == 0 {
		return store.Passkey{}, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return store.Passkey{}, err
	}
	var data []byte
	if err := q.QueryRow(ctx, "SELECT data FROM passkeys WHERE id = $1", id).Scan(&data); err != nil {
		return store.Passkey{}, notFound(err, store.ErrNotFound)
	}
	return store.DecodePasskey(data)
}

// ListPasskeys returns the passkeys of user, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, user string) ([]store.Passkey, error) {
	if user == "" || !textOK(user) {
		return nil, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT data FROM passkeys WHERE user_name = $1", user)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Passkey, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return store.Passkey{}, err
		}
		return store.DecodePasskey(data)
	})
	if err != nil {
		return nil, err
	}
	store.SortPasskeys(out)
	return out, nil
}

// UpdatePasskey changes the passkey of id with fn, which may change
// anything but its ID and user, holding its row lock meanwhile.
// store.ErrNotFound when there is none.
func (s *Store) UpdatePasskey(ctx context.Context, id []byte, fn func(*store.Passkey) error) error {
	if len(id) == 0 {
		return store.ErrNotFound
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		if err := q.QueryRow(ctx, "SELECT data FROM passkeys WHERE id = $1 FOR UPDATE", id).Scan(&data); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		p, err := store.DecodePasskey(data)
		if err != nil {
			return err
		}
		user := p.User
		if err := fn(&p); err != nil {
			return err
		}
		p.ID, p.User = bytes.Clone(id), user
		p.CreatedAt, p.LastUsedAt = p.CreatedAt.UTC(), p.LastUsedAt.UTC()
		if data, err = store.EncodePasskey(p); err != nil {
			return err
		}
		return s.deferExec(ctx, "UPDATE passkeys SET data = $2 WHERE id = $1", id, data)
	})
}

// DeletePasskey removes the passkey id of user. store.ErrNotFound when user
// has no such passkey, so one user cannot remove another's.
func (s *Store) DeletePasskey(ctx context.Context, user string, id []byte) error {
	if len(id) == 0 || !textOK(user) {
		return store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "DELETE FROM passkeys WHERE id = $1 AND user_name = $2", id, user)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// CountPasskeys returns how many passkeys each user has; users without
// one are absent.
func (s *Store) CountPasskeys(ctx context.Context) (map[string]int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT user_name, count(*) FROM passkeys GROUP BY user_name")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var user string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&user, &n}, func() error {
		out[user] = n
		return nil
	})
	return out, err
}

// ImportPasskey is store.Sink's: a passkey as it was.
func (im importer) ImportPasskey(ctx context.Context, p store.Passkey) error {
	if !textOK(p.User) {
		return errors.New("postgres: import: a passkey's user is not UTF-8 text")
	}
	data, err := store.EncodePasskey(p)
	if err != nil {
		return err
	}
	return im.exec(ctx, "INSERT INTO passkeys (id, user_name, data) VALUES ($1, $2, $3)", p.ID, p.User, data)
}
