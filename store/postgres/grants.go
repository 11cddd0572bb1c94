package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
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
		n, err = s.revokeGrantsWhere(ctx, column+" = $1", owner)
		return err
	})
	return n, err
}

// revokeGrantsWhere deletes every record of the grants that have a record
// matching where (a condition on client_id and subject, with args as its
// $1, $2…), notifies every process of the access tokens that went, and
// returns how many grants it ended.
func (s *Store) revokeGrantsWhere(ctx context.Context, where string, args ...any) (int, error) {
	q, err := s.q(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	var keys [][]byte
	err = q.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM tokens WHERE request_id IN (SELECT request_id FROM tokens WHERE `+where+`)
			RETURNING request_id, kind, key
		)
		SELECT count(DISTINCT request_id), coalesce(array_agg(key) FILTER (WHERE kind = 'a'), '{}') FROM gone`,
		args...).Scan(&n, &keys)
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

// RevokeSubjectClientGrants does what RevokeClientGrants does, but only for
// the grants of clientID whose subject is subject: one user cuts off one
// application, and the other users of that application keep theirs.
func (s *Store) RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error) {
	if subject == "" || clientID == "" || !textOK(subject) || !textOK(clientID) {
		return 0, nil
	}
	var n int
	err := s.update(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.revokeGrantsWhere(ctx, "subject = $1 AND client_id = $2", subject, clientID)
		return err
	})
	return n, err
}

// ListSubjectGrants returns one request per live grant of subject (a user
// name), ordered by request id: that of the grant's newest live token, an
// unexpired access token or an active unexpired refresh token (a refresh
// token winning a tie), with its session decoded into what newSession
// returns (nil: not decoded). A grant whose client is gone is not listed.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string, newSession func() fosite.Session) ([]fosite.Requester, error) {
	if subject == "" || !textOK(subject) {
		return nil, nil
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `
		SELECT t.request_id, t.kind, t.data, c.data FROM tokens t JOIN clients c ON c.id = t.client_id
		WHERE t.subject = $1 AND t.kind IN ('a', 'r') AND t.active AND (t.expires_at IS NULL OR t.expires_at > $2)
		ORDER BY t.request_id COLLATE "C"`, subject, s.now())
	if err != nil {
		return nil, err
	}
	type live struct {
		id, kind         string
		data, clientData []byte
		at               time.Time
	}
	var best []live
	var l live
	_, err = pgx.ForEachRow(rows, []any{&l.id, &l.kind, &l.data, &l.clientData}, func() error {
		req, err := store.DecodeRequest(l.data, nil, nil)
		if err != nil {
			return err
		}
		cur := live{id: l.id, kind: l.kind, data: l.data, clientData: l.clientData, at: req.RequestedAt}
		if n := len(best); n > 0 && best[n-1].id == cur.id {
			b := &best[n-1]
			if cur.at.After(b.at) || (cur.at.Equal(b.at) && cur.kind == kindRefresh) {
				*b = cur
			}
			return nil
		}
		best = append(best, cur)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]fosite.Requester, 0, len(best))
	for _, b := range best {
		client, err := s.clients.decode(b.clientData)
		if err != nil {
			return nil, err
		}
		var sess fosite.Session
		if newSession != nil {
			sess = newSession()
		}
		req, err := store.DecodeRequest(b.data, client, sess)
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, nil
}
