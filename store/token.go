package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"sort"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/storage"
	bolt "go.etcd.io/bbolt"
)

var (
	_ fosite.ClientManager          = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
	_ storage.Transactional         = (*Store)(nil)
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

// InvalidateAuthorizeCodeSession marks a code used: it replaces the code by
// its tombstone, which keeps the code's grant, client, subject, expiry and
// the extra claims of its session (a dpop_jkt binding). A code is used
// once: invalidating a used one answers fosite.ErrInvalidatedAuthorizeCode,
// so two exchanges of one code cannot both succeed.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	return s.update(ctx, func(tx *wtx) error {
		key := sighash(signature)
		v := tx.bucket(bucketCodes).Get(key)
		if v == nil {
			return fosite.ErrNotFound
		}
		rec, err := decodeRequest(v)
		if err != nil {
			return err
		}
		if !rec.Active {
			return fosite.ErrInvalidatedAuthorizeCode
		}
		tomb, err := encodeRequest(rec.tombstone(0))
		if err != nil {
			return err
		}
		return tx.bucket(bucketCodes).Put(key, tomb)
	})
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

// DeleteAccessTokenSession deletes an access token.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
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
// inactive and deletes the grant's access tokens, as fosite's reference
// store does. When the token is already inactive (a concurrent refresh
// rotated it first) it returns fosite.ErrSerializationFailure and changes
// nothing, so two refreshes never fork a grant into two live tokens.
//
// The rotated token is kept as a tombstone, which is all reuse detection
// needs, and a grant keeps only its newest Options.KeepRotated tombstones,
// with their grace-window successors: a grant that rotates for ever keeps
// a bounded number of records (docs/reliability.md, "Bounded growth").
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.update(ctx, func(tx *wtx) error {
		key := sighash(signature)
		v := tx.bucket(bucketRefresh).Get(key)
		if v == nil {
			return fosite.ErrNotFound
		}
		h, err := peekRequest(v)
		if err != nil {
			return err
		}
		if h.ID != requestID {
			return fosite.ErrNotFound
		}
		if !h.Active {
			return fosite.ErrSerializationFailure
		}
		// Every earlier refresh token of the grant went inactive when it
		// was rotated, so only this one needs retiring.
		if err := s.retireRefresh(tx, requestID, key); err != nil {
			return err
		}
		return revokeAccess(tx, requestID)
	})
}

// RevokeRefreshToken marks every refresh token of grant requestID
// inactive; using one afterwards is reuse (fosite.ErrInactiveToken), for
// the newest Options.KeepRotated of them.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.update(ctx, func(tx *wtx) error { return s.retireRefresh(tx, requestID, nil) })
}

// RevokeAccessToken deletes every access token of grant requestID.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.update(ctx, func(tx *wtx) error { return revokeAccess(tx, requestID) })
}

// pruneBatch bounds the tombstones one write prunes, so the first rotation
// of a grant that piled up inactive records (in a file of release v1)
// stays a short write; later rotations prune the rest.
const pruneBatch = 256

// retireRefresh turns refresh tokens of grant requestID into tombstones:
// the one stored under key, or every active one when key is nil. Each new
// tombstone is numbered after the grant's newest, and the grant's oldest
// tombstones beyond s.keepRotated are deleted with their successors.
// Tombstones of release v1 (inactive records in JSON) count as the oldest.
func (s *Store) retireRefresh(tx *wtx, requestID string, key []byte) error {
	_, keys := grantTokens(tx.tx, requestID, kindRefresh)
	type dead struct {
		key []byte
		seq uint64
		exp uint64
	}
	var tombs []dead
	var retire [][]byte
	var last uint64
	b := tx.bucket(bucketRefresh)
	for _, k := range keys {
		v := b.Get(k)
		if v == nil {
			continue // an index entry the janitor removes
		}
		h, err := peekRequest(v)
		if err != nil {
			return err
		}
		switch {
		case !h.Active:
			tombs = append(tombs, dead{k, h.Seq, binary.BigEndian.Uint64(v[:8])})
			last = max(last, h.Seq)
		case key == nil || bytes.Equal(k, key):
			retire = append(retire, k)
		}
	}
	for _, k := range retire {
		last++
		v := b.Get(k)
		rec, err := decodeRequest(v)
		if err != nil {
			return err
		}
		nv, err := encodeRequest(rec.tombstone(last))
		if err != nil {
			return err
		}
		if err := b.Put(k, nv); err != nil {
			return err
		}
		tombs = append(tombs, dead{k, last, binary.BigEndian.Uint64(v[:8])})
	}
	if len(tombs) <= s.keepRotated {
		return nil
	}
	sort.Slice(tombs, func(i, j int) bool {
		a, b := tombs[i], tombs[j]
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		if a.exp != b.exp {
			return a.exp < b.exp
		}
		return bytes.Compare(a.key, b.key) < 0
	})
	successors := tx.bucket(bucketSuccessors)
	for _, d := range tombs[:min(len(tombs)-s.keepRotated, pruneBatch)] {
		if err := deleteToken(tx, kindRefresh, d.key); err != nil {
			return err
		}
		if err := successors.Delete(d.key); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) createToken(ctx context.Context, kind string, tokenType fosite.TokenType, signature string, req fosite.Requester) error {
	rec, err := newRequestRecord(req, tokenType)
	if err != nil {
		return err
	}
	v, err := encodeRequest(rec)
	if err != nil {
		return err
	}
	key := sighash(signature)
	return s.update(ctx, func(tx *wtx) error { return putToken(tx, kind, key, rec, v) })
}

func (s *Store) getToken(ctx context.Context, kind, signature string, session fosite.Session) (req *fosite.Request, active bool, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, kindBucket(kind)).Get(sighash(signature))
		if v == nil {
			return fosite.ErrNotFound
		}
		rec, err := decodeRequest(v)
		if err != nil {
			return err
		}
		active = rec.Active
		req, err = s.rebuild(tx, rec, session)
		return err
	})
	return req, active, err
}

func (s *Store) deleteToken(ctx context.Context, kind, signature string) error {
	key := sighash(signature)
	return s.update(ctx, func(tx *wtx) error { return deleteToken(tx, kind, key) })
}

// grantPrefix is the index prefix of every signature of a grant.
func grantPrefix(requestID string) []byte { return []byte(requestID + sep) }

func grantKey(requestID, kind string, key []byte) []byte {
	k := make([]byte, 0, len(requestID)+len(kind)+2+len(key))
	k = append(k, requestID...)
	k = append(k, sep...)
	k = append(k, kind...)
	k = append(k, sep...)
	return append(k, key...)
}

// putToken writes a token record and its index entries.
func putToken(tx *wtx, kind string, key []byte, rec *requestRecord, v []byte) error {
	b := tx.bucket(kindBucket(kind))
	if old := b.Get(key); old != nil {
		oldRec, err := peekRequest(old)
		if err != nil {
			return err
		}
		if oldRec.ID != rec.ID {
			if err := unindex(tx, oldRec, kind, key); err != nil {
				return err
			}
		}
	}
	if err := b.Put(key, v); err != nil {
		return err
	}
	if err := tx.bucket(bucketGrants).Put(grantKey(rec.ID, kind, key), nil); err != nil {
		return err
	}
	// A grant's client and subject entries already exist from its first
	// token; writing them again would only rewrite their pages.
	if err := tx.bucket(bucketClientGrants).ensure([]byte(rec.ClientID + sep + rec.ID)); err != nil {
		return err
	}
	if rec.Subject != "" {
		return tx.bucket(bucketSubjectGrants).ensure([]byte(rec.Subject + sep + rec.ID))
	}
	return nil
}

// deleteToken removes a token record and its index entries; a missing one
// is not an error, as in fosite's reference store.
func deleteToken(tx *wtx, kind string, key []byte) error {
	b := tx.bucket(kindBucket(kind))
	v := b.Get(key)
	if v == nil {
		return nil
	}
	rec, err := peekRequest(v)
	if err != nil {
		return err
	}
	if err := b.Delete(key); err != nil {
		return err
	}
	return unindex(tx, rec, kind, key)
}

// unindex removes the grant index entry of one record, and the client and
// subject entries once the grant has no record left.
func unindex(tx *wtx, rec recordHeader, kind string, key []byte) error {
	grants := tx.bucket(bucketGrants)
	if err := grants.Delete(grantKey(rec.ID, kind, key)); err != nil {
		return err
	}
	prefix := grantPrefix(rec.ID)
	if k, _ := grants.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return nil
	}
	if err := tx.bucket(bucketClientGrants).Delete([]byte(rec.ClientID + sep + rec.ID)); err != nil {
		return err
	}
	if rec.Subject != "" {
		return tx.bucket(bucketSubjectGrants).Delete([]byte(rec.Subject + sep + rec.ID))
	}
	return nil
}

// grantTokens lists the index entries of a grant, optionally of one kind.
func grantTokens(tx *bolt.Tx, requestID, kind string) (kinds []string, keys [][]byte) {
	prefix := grantPrefix(requestID)
	if kind != "" {
		prefix = append(prefix, kind+sep...)
	}
	c := bucket(tx, bucketGrants).Cursor()
	base := len(requestID) + 1
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) < base+2 || !isKind(string(k[base:base+1])) {
			continue
		}
		kinds = append(kinds, string(k[base:base+1]))
		keys = append(keys, bytes.Clone(k[base+2:]))
	}
	return kinds, keys
}

func revokeAccess(tx *wtx, requestID string) error {
	_, keys := grantTokens(tx.tx, requestID, kindAccess)
	for _, key := range keys {
		if err := deleteToken(tx, kindAccess, key); err != nil {
			return err
		}
	}
	return nil
}

// deleteGrant removes every record of a grant (codes, access and refresh
// tokens, PKCE sessions) and reports whether there was any.
func deleteGrant(tx *wtx, requestID string) (bool, error) {
	kinds, keys := grantTokens(tx.tx, requestID, "")
	for i, key := range keys {
		if err := deleteToken(tx, kinds[i], key); err != nil {
			return false, err
		}
	}
	// Index entries whose record was already gone.
	for i, key := range keys {
		if err := tx.bucket(bucketGrants).Delete(grantKey(requestID, kinds[i], key)); err != nil {
			return false, err
		}
	}
	return len(keys) > 0, nil
}
