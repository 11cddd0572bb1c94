package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mcpd/mcpd/store"
)

// PutConsent stores (or replaces) the consent of c.User for c.ClientID;
// CreatedAt defaults to now.
func (s *Store) PutConsent(ctx context.Context, c store.Consent) error {
	if err := store.CheckConsent(c); err != nil {
		return err
	}
	if !textOK(c.User) || !textOK(c.ClientID) {
		return fmt.Errorf("postgres: consent user and client id must be UTF-8")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now().UTC()
	}
	data, err := store.EncodeConsent(c)
	if err != nil {
		return err
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `
		INSERT INTO consents (user_name, client_id, expires_at, data) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_name, client_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, data = EXCLUDED.data`,
		c.User, c.ClientID, nullTime(c.ExpiresAt), data)
	return err
}

// GetConsent returns the user's consent for the client, or
// store.ErrNotFound when there is none or it has expired.
func (s *Store) GetConsent(ctx context.Context, user, clientID string) (*store.Consent, error) {
	if !textOK(user) || !textOK(clientID) {
		return nil, store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = q.QueryRow(ctx, "SELECT data FROM consents WHERE user_name = $1 AND client_id = $2", user, clientID).Scan(&data)
	if err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	c, err := store.DecodeConsent(data)
	if err != nil {
		return nil, err
	}
	if c.Expired(s.now()) {
		return nil, store.ErrNotFound
	}
	return &c, nil
}

// ListConsents returns the unexpired consents of user, or of every user
// when user is "", ordered by user and client id (byte order).
func (s *Store) ListConsents(ctx context.Context, user string) ([]store.Consent, error) {
	if !textOK(user) {
		return nil, nil
	}
	now := s.now()
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `
		SELECT data FROM consents WHERE $1 = '' OR user_name = $1
		ORDER BY user_name COLLATE "C", client_id COLLATE "C"`, user)
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Consent, error) {
		var data []byte
		if err := row.Scan(&data); err != nil {
			return store.Consent{}, err
		}
		return store.DecodeConsent(data)
	})
	if err != nil {
		return nil, err
	}
	var out []store.Consent
	for _, c := range all {
		if !c.Expired(now) {
			out = append(out, c)
		}
	}
	return out, nil
}

// DeleteConsent forgets the user's consent for the client.
// store.ErrNotFound when there is none.
func (s *Store) DeleteConsent(ctx context.Context, user, clientID string) error {
	if !textOK(user) || !textOK(clientID) {
		return store.ErrNotFound
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, "DELETE FROM consents WHERE user_name = $1 AND client_id = $2", user, clientID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
