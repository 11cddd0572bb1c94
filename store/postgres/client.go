package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// GetClient returns the *store.Client registered under id, or
// fosite.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.LookupClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CreateClient registers c; CreatedAt defaults to now. store.ErrAlreadyExists
// when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	if c == nil || !store.ValidClientID(c.ID) || !textOK(c.ID) {
		return errors.New("postgres: client id must be set, UTF-8 and free of NUL bytes")
	}
	cp := *c
	if cp.CreatedAt.IsZero() {
		cp.CreatedAt = s.now().UTC()
	}
	data, err := store.EncodeClient(&cp)
	if err != nil {
		return err
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `
		INSERT INTO clients (id, source, created_at, activated_at, data) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`,
		cp.ID, cp.Source, cp.CreatedAt, nullTime(cp.ActivatedAt), data)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// LookupClient returns the client registered under id, or
// store.ErrNotFound.
func (s *Store) LookupClient(ctx context.Context, id string) (*store.Client, error) {
	if !textOK(id) {
		return nil, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	if err := q.QueryRow(ctx, "SELECT data FROM clients WHERE id = $1", id).Scan(&data); err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	return s.clients.decode(data)
}

// UpdateClient applies fn to the client registered under id and stores the
// result, holding the client's row lock in between; an error from fn
// aborts the update. The id cannot change. store.ErrNotFound when there is
// no such client.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*store.Client) error) error {
	if !textOK(id) {
		return store.ErrNotFound
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		if err := q.QueryRow(ctx, "SELECT data FROM clients WHERE id = $1 FOR UPDATE", id).Scan(&data); err != nil {
			return notFound(err, store.ErrNotFound)
		}
		c, err := store.DecodeClient(data)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		if c.ID != id {
			return errors.New("postgres: a client's id cannot change")
		}
		if data, err = store.EncodeClient(c); err != nil {
			return err
		}
		_, err = q.Exec(ctx, "UPDATE clients SET source = $2, created_at = $3, activated_at = $4, data = $5 WHERE id = $1",
			id, c.Source, c.CreatedAt, nullTime(c.ActivatedAt), data)
		return err
	})
}

// DeleteClient removes the client, ends every grant of it (its tokens stop
// working at once, in every process) and deletes the consents given to it.
// store.ErrNotFound when there is no such client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if !textOK(id) {
		return store.ErrNotFound
	}
	return s.update(ctx, func(ctx context.Context) error {
		n, err := s.deleteClients(ctx, []string{id})
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// deleteClients deletes the clients of ids that exist, their grants and
// the consents given to them, in ctx's transaction, and returns how many
// clients it deleted.
func (s *Store) deleteClients(ctx context.Context, ids []string) (int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return 0, err
	}
	tag, err := q.Exec(ctx, "DELETE FROM clients WHERE id = ANY($1)", ids)
	if err != nil || tag.RowsAffected() == 0 {
		return 0, err
	}
	// Every record of a grant has its client id: no grant outlives this.
	if _, err := q.Exec(ctx, "DELETE FROM tokens WHERE client_id = ANY($1)", ids); err != nil {
		return 0, err
	}
	if _, err := q.Exec(ctx, "DELETE FROM consents WHERE client_id = ANY($1)", ids); err != nil {
		return 0, err
	}
	// A cached token of a gone client must go everywhere.
	if err := s.notifyGone(ctx, nil, true); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// ListClients returns every client, oldest first.
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT data FROM clients")
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Client, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return nil, err
		}
		return store.DecodeClient(data)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", err)
	}
	store.SortClients(out)
	return out, nil
}

// CountClients returns the number of registered clients.
func (s *Store) CountClients(ctx context.Context) (int, error) {
	return s.count(ctx, "SELECT count(*) FROM clients")
}

func (s *Store) count(ctx context.Context, query string, args ...any) (int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	err = q.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}
