package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// RevokeClientGrants deletes every code, access token, refresh token and
// PKCE session of every grant of clientID, and returns how many grants it
// ended. Every process stops accepting its tokens.
func (s *Store) RevokeClientGrants(ctx context.Context, clientID string) (int, error) {
	return s.revokeGrants(ctx, "client_id", clientID)
}

// RevokeSubjectGrants does what RevokeClientGrants does for every grant
// whose session subject is subject (a user name).
func (s *Store) RevokeSubjectGrants(ctx context.Context, subject string) (int, error) {
	return s.revokeGrants(ctx, "subject", subject)
}

func (s *Store) revokeGrants(ctx context.Context, column, owner string) (int, error) {
	if owner == "" || !textOK(owner) {
		return 0, nil
	}
	var n int
	err := s.update(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.revokeGrantsWhere(ctx, column, owner)
		return err
	})
	return n, err
}

// revokeGrantsWhere deletes every record of the grants that have a record
// whose column (client_id or subject) is owner, notifies every process of
// the access tokens that went, and returns how many grants it ended.
func (s *Store) revokeGrantsWhere(ctx context.Context, column, owner string) (int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	var keys [][]byte
	err = q.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM tokens WHERE request_id IN (SELECT request_id FROM tokens WHERE `+column+` = $1)
			RETURNING request_id, kind, key
		)
		SELECT count(DISTINCT request_id), coalesce(array_agg(key) FILTER (WHERE kind = 'a'), '{}') FROM gone`,
		owner).Scan(&n, &keys)
	if err != nil {
		return 0, err
	}
	return n, s.notifyGone(ctx, keys, false)
}

// LiveGrants counts, per client id, the grants that have a live token: an
// access token not yet expired, or an active refresh token not yet expired.
func (s *Store) LiveGrants(ctx context.Context) (map[string]int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `
		SELECT client_id, count(DISTINCT request_id) FROM tokens
		WHERE kind IN ('a', 'r') AND active AND (expires_at IS NULL OR expires_at > $1)
		GROUP BY client_id`, s.now())
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var id string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		out[id] = n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
