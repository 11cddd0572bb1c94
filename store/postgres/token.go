package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"

	"github.com/mcpd/mcpd/store"
)

var (
	_ fosite.ClientManager          = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
	_ storage.Transactional         = (*Store)(nil)
)

// Token kinds: the values of tokens.kind.
const (
	kindCode    = "c"
	kindAccess  = "a"
	kindRefresh = "r"
	kindPKCE    = "p"
)

// CreateAuthorizeCodeSession stores the authorization request of a code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindCode, fosite.AuthorizeCode, signature, req)
}

// GetAuthorizeCodeSession returns the request of a code, its session
// decoded into session. For a used code it returns the request and
// fosite.ErrInvalidatedAuthorizeCode; for an unknown one fosite.ErrNotFound.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindCode, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used and keeps only its
// tombstone (store.Tombstone), made from the record this process read
// last, or else written with the transaction's next statement. A code is
// used once: invalidating a used one answers
// fosite.ErrInvalidatedAuthorizeCode, so two exchanges of one code racing
// on two replicas cannot both succeed (the second waits for the first's
// row lock, then finds the code used).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	key := store.SigHash(signature)
	tomb := s.tombs.take(kindCode, key, "")
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var used, exists bool
		var data []byte
		err = q.QueryRow(ctx, `
			WITH used AS (
				UPDATE tokens SET active = false, data = coalesce($2::json, data)
				WHERE kind = 'c' AND key = $1 AND active RETURNING data
			)
			SELECT EXISTS (SELECT 1 FROM used), CASE WHEN $2::json IS NULL THEN (SELECT data FROM used) END,
				EXISTS (SELECT 1 FROM tokens WHERE kind = 'c' AND key = $1)`,
			key, tomb).Scan(&used, &data, &exists)
		switch {
		case err != nil:
			return err
		case used && data != nil:
			return s.bury(ctx, kindCode, key, data)
		case used:
			return nil
		case exists:
			return fosite.ErrInvalidatedAuthorizeCode
		}
		return fosite.ErrNotFound
	})
}

// bury replaces the record of a used code or a retired refresh token by its
// tombstone. The statement goes out with the transaction's next one.
func (s *Store) bury(ctx context.Context, kind string, key, data []byte) error {
	tomb, err := store.Tombstone(data)
	if err != nil {
		return err
	}
	return s.deferExec(ctx, "UPDATE tokens SET data = $3 WHERE kind = $1 AND key = $2", kind, key, tomb)
}

// CreatePKCERequestSession stores the PKCE request of a code.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, fosite.AuthorizeCode, signature, req)
}

// GetPKCERequestSession returns the PKCE request of a code, or
// fosite.ErrNotFound.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindPKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession deletes the PKCE request of a code.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindPKCE, signature)
}

// CreateAccessTokenSession stores the request of an access token.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindAccess, fosite.AccessToken, signature, req)
}

// GetAccessTokenSession returns the request of an access token, or
// fosite.ErrNotFound. Expiry is the caller's to check, as in fosite.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindAccess, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteAccessTokenSession deletes an access token; every process stops
// accepting it.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.update(ctx, func(ctx context.Context) error {
		return s.deleteAccessWhere(ctx, "kind = 'a' AND key = $1", store.SigHash(signature))
	})
}

// CreateRefreshTokenSession stores the request of a refresh token.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, _ string, req fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, fosite.RefreshToken, signature, req)
}

// GetRefreshTokenSession returns the request of a refresh token. For a
// rotated or revoked one it returns the request and fosite.ErrInactiveToken;
// for an unknown one fosite.ErrNotFound.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession deletes a refresh token.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindRefresh, signature)
}

// RotateRefreshToken marks the refresh token signature of grant requestID
// inactive and deletes the grant's access tokens, in one statement that
// holds the token's row lock. When the token is already inactive (a
// concurrent refresh, on any replica, rotated it first) it returns
// fosite.ErrSerializationFailure and changes nothing, so two refreshes
// never fork a grant into two live tokens.
//
// The rotated token keeps only its tombstone, numbered after the grant's
// newest, and the same statement deletes the grant's tombstones older than
// its newest Options.KeepRotated, with their grace-window successors: a
// grant that rotates for ever keeps a bounded number of rows. The
// tombstone is made from the record this process read last (the token
// endpoint reads the token before it rotates it: tombstones), or else
// written by a statement that goes out with the transaction's next one.
//
// The retired access tokens stop working in this process at once and in
// the others within Options.TokenCacheMaxAge: a rotation sends no
// notification, since it is the busiest write there is.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if !textOK(requestID) {
		return fosite.ErrNotFound
	}
	key := store.SigHash(signature)
	tomb := s.tombs.take(kindRefresh, key, requestID)
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		var data []byte
		var rotated, exists bool
		var retired [][]byte
		err = q.QueryRow(ctx, `
			WITH n AS (
				SELECT coalesce(max(seq), 0) + 1 AS seq FROM tokens WHERE request_id = $2 AND kind = 'r'
			), rotated AS (
				UPDATE tokens SET active = false, seq = (SELECT seq FROM n), data = coalesce($3::json, data)
				WHERE kind = 'r' AND key = $1 AND request_id = $2 AND active
				RETURNING seq, data
			), retired AS (
				DELETE FROM tokens WHERE request_id = $2 AND kind = 'a' AND EXISTS (SELECT 1 FROM rotated)
				RETURNING key
			), pruned AS (
				DELETE FROM tokens WHERE request_id = $2 AND kind = 'r' AND NOT active
					AND seq <= (SELECT seq FROM rotated) - $4
				RETURNING key
			), gone AS (
				DELETE FROM successors WHERE key IN (SELECT key FROM pruned)
			)
			SELECT EXISTS (SELECT 1 FROM rotated),
				CASE WHEN $3::json IS NULL THEN (SELECT data FROM rotated) END,
				EXISTS (SELECT 1 FROM tokens WHERE kind = 'r' AND key = $1 AND request_id = $2),
				coalesce((SELECT array_agg(key) FROM retired), '{}')`,
			key, requestID, tomb, s.keep).Scan(&rotated, &data, &exists, &retired)
		switch {
		case err != nil:
			return err
		case rotated:
			s.changedTokens(ctx, changed{keys: retired})
			if data != nil {
				return s.bury(ctx, kindRefresh, key, data)
			}
			return nil
		case exists:
			return fosite.ErrSerializationFailure
		}
		return fosite.ErrNotFound
	})
}

// RevokeRefreshToken marks every refresh token of grant requestID
// inactive, keeping their tombstones; using one afterwards is reuse
// (fosite.ErrInactiveToken), for the newest Options.KeepRotated of them.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if !textOK(requestID) {
		return nil
	}
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		rows, err := q.Query(ctx, `
			UPDATE tokens SET active = false,
				seq = (SELECT coalesce(max(seq), 0) FROM tokens WHERE request_id = $1 AND kind = 'r') + 1
			WHERE request_id = $1 AND kind = 'r' AND active
			RETURNING key, data, seq`, requestID)
		if err != nil {
			return err
		}
		type retired struct {
			key, data []byte
			seq       int64
		}
		var rs []retired
		var r retired
		if _, err := pgx.ForEachRow(rows, []any{&r.key, &r.data, &r.seq}, func() error {
			rs = append(rs, retired{r.key, r.data, r.seq})
			return nil
		}); err != nil {
			return err
		}
		if len(rs) == 0 {
			return nil
		}
		for _, r := range rs {
			if err := s.bury(ctx, kindRefresh, r.key, r.data); err != nil {
				return err
			}
		}
		// The statement goes out with the transaction's next one.
		return s.deferExec(ctx, `
			WITH pruned AS (
				DELETE FROM tokens WHERE request_id = $1 AND kind = 'r' AND NOT active AND seq <= $2
				RETURNING key
			)
			DELETE FROM successors WHERE key IN (SELECT key FROM pruned)`,
			requestID, rs[0].seq-int64(s.keep))
	})
}

// RevokeAccessToken deletes every access token of grant requestID; every
// process stops accepting them.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	if !textOK(requestID) {
		return nil
	}
	return s.update(ctx, func(ctx context.Context) error {
		return s.deleteAccessWhere(ctx, "kind = 'a' AND request_id = $1", requestID)
	})
}

// deleteAccessWhere deletes the access tokens matching where (with arg
// $1) and notifies every process.
func (s *Store) deleteAccessWhere(ctx context.Context, where string, arg any) error {
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	rows, err := q.Query(ctx, "DELETE FROM tokens WHERE "+where+" RETURNING key", arg)
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return err
	}
	return s.notifyGone(ctx, keys, false)
}

func (s *Store) createToken(ctx context.Context, kind string, tokenType fosite.TokenType, signature string, req fosite.Requester) error {
	enc, err := store.EncodeRequest(req, tokenType)
	if err != nil {
		return err
	}
	if !textOK(enc.ID) || !textOK(enc.ClientID) || !textOK(enc.Subject) {
		return fmt.Errorf("postgres: request id, client id and subject must be UTF-8 without NUL bytes")
	}
	key := store.SigHash(signature)
	s.tombs.forget(kind, key)
	err = s.deferExec(ctx, `
		INSERT INTO tokens (kind, key, request_id, client_id, subject, active, expires_at, data)
		VALUES ($1, $2, $3, $4, $5, true, $6, $7)
		ON CONFLICT (kind, key) DO UPDATE SET request_id = EXCLUDED.request_id, client_id = EXCLUDED.client_id,
			subject = EXCLUDED.subject, active = true, expires_at = EXCLUDED.expires_at, seq = 0, data = EXCLUDED.data`,
		kind, key, enc.ID, enc.ClientID, enc.Subject, nullTime(enc.ExpiresAt), enc.JSON)
	if err != nil {
		return err
	}
	if kind == kindAccess {
		// It may have replaced a record under the same key.
		s.changedTokens(ctx, changed{keys: [][]byte{key}})
	}
	return nil
}

// getToken reads a request and its client in one query; a request whose
// client is gone is gone too (fosite.ErrNotFound).
func (s *Store) getToken(ctx context.Context, kind, signature string, session fosite.Session) (*fosite.Request, bool, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, false, err
	}
	var data, clientData []byte
	var active bool
	key := store.SigHash(signature)
	err = q.QueryRow(ctx, `
		SELECT t.data, t.active, c.data FROM tokens t JOIN clients c ON c.id = t.client_id
		WHERE t.kind = $1 AND t.key = $2`, kind, key).Scan(&data, &active, &clientData)
	if err != nil {
		return nil, false, notFound(err, fosite.ErrNotFound)
	}
	client, err := s.clients.decode(clientData)
	if err != nil {
		return nil, false, err
	}
	req, err := store.DecodeRequest(data, client, session)
	if err != nil {
		return nil, false, err
	}
	if active {
		s.tombs.remember(kind, key, req.ID, data)
	}
	return req, active, nil
}

// deleteToken removes a code, refresh token or PKCE session; a missing one
// is not an error, as in fosite's reference store.
func (s *Store) deleteToken(ctx context.Context, kind, signature string) error {
	key := store.SigHash(signature)
	s.tombs.forget(kind, key)
	return s.deferExec(ctx, "DELETE FROM tokens WHERE kind = $1 AND key = $2", kind, key)
}

// LookupAccessToken returns the record of the access token with this
// signature, or store.ErrNotFound when there is none or its client is no
// longer registered. It checks nothing else: expiry and audience are the
// caller's. Outside a transaction it answers a token it read before from
// its cache (see tokenCache).
func (s *Store) LookupAccessToken(ctx context.Context, signature string) (store.AccessTokenInfo, error) {
	key := store.SigHash(signature)
	cached := s.tokens != nil && frameFrom(ctx) == nil // a transaction may hold uncommitted writes
	var gen uint64
	if cached {
		info, ok, g := s.tokens.get(key)
		if ok {
			return info.Clone(), nil
		}
		gen = g
	}
	q, err := s.q(ctx)
	if err != nil {
		return store.AccessTokenInfo{}, err
	}
	var data []byte
	var active bool
	err = q.QueryRow(ctx, `
		SELECT t.data, t.active FROM tokens t
		WHERE t.kind = 'a' AND t.key = $1 AND EXISTS (SELECT 1 FROM clients c WHERE c.id = t.client_id)`,
		key).Scan(&data, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.AccessTokenInfo{}, store.ErrNotFound
	}
	if err != nil {
		return store.AccessTokenInfo{}, err
	}
	info, err := store.DecodeAccessTokenInfo(data)
	if err != nil {
		return store.AccessTokenInfo{}, err
	}
	info.Active = active
	if cached {
		s.tokens.put(key, info.Clone(), gen)
	}
	return info, nil
}
