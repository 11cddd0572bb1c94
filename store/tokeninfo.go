package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// AccessTokenInfo is what checking a bearer token needs of the record of
// an access token: LookupAccessToken reads only this, where
// GetAccessTokenSession rebuilds the whole fosite request.
type AccessTokenInfo struct {
	Subject         string
	ClientID        string
	GrantedScopes   []string
	GrantedAudience []string
	ExpiresAt       time.Time // the session's access-token expiry; zero: it set none
	Active          bool
	// JKT is the thumbprint of the DPoP key the token is bound to (its
	// cnf.jkt); empty for a bearer token.
	JKT string
}

// LookupAccessToken returns the record of the access token with this
// signature, or ErrNotFound when there is none or its client is no longer
// registered (as GetAccessTokenSession answers fosite.ErrNotFound). It
// checks nothing else: expiry and audience are the caller's.
//
// It runs on every authenticated MCP request, so it decodes only the
// fields above, skipping the form and the session, and does not rebuild
// the fosite request or load the client; outside a transaction it answers
// a token it read before from tokenCache, which every commit that changes
// a token or deletes a client invalidates (docs/benchmarks.md,
// "Authentication cost").
func (s *Store) LookupAccessToken(ctx context.Context, signature string) (AccessTokenInfo, error) {
	key := sighash(signature)
	inTx := frameFrom(ctx) != nil // may hold uncommitted writes: no cache
	var gen uint64
	if !inTx {
		info, ok, g := s.tokens.get(key)
		if ok {
			return info.clone(), nil
		}
		gen = g
	}
	var info AccessTokenInfo
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketAccess).Get(key)
		if v == nil {
			return ErrNotFound
		}
		var err error
		if info, err = decodeAccessTokenInfo(v); err != nil {
			return err
		}
		if bucket(tx, bucketClients).Get([]byte(info.ClientID)) == nil {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return AccessTokenInfo{}, err
	}
	if !inTx {
		if s.tokens.afterRead != nil {
			s.tokens.afterRead()
		}
		s.tokens.put(key, info.clone(), gen)
	}
	return info, nil
}

// tokenInfoRecord is the part of a requestRecord an AccessTokenInfo holds,
// with requestRecord's JSON names, in AccessTokenInfo's field order so one
// converts to the other.
type tokenInfoRecord struct {
	Subject         string    `json:"subject"`
	ClientID        string    `json:"client_id"`
	GrantedScopes   []string  `json:"granted_scopes"`
	GrantedAudience []string  `json:"granted_audience"`
	ExpiresAt       time.Time `json:"expires_at"`
	Active          bool      `json:"active"`
	JKT             string    `json:"cnf_jkt"`
}

// decodeAccessTokenInfo reads an AccessTokenInfo from a request record
// (expiry prefix and JSON, as encodeRequest lays it out). It decodes with
// segmentio/encoding, which skips the fields it does not want about three
// times as fast as encoding/json (BenchmarkDecodeAccessTokenInfo).
func decodeAccessTokenInfo(v []byte) (AccessTokenInfo, error) {
	if len(v) < 8 {
		return AccessTokenInfo{}, errors.New("store: decode token: record too short")
	}
	return decodeAccessTokenInfoJSON(v[8:])
}

// decodeAccessTokenInfoJSON reads an AccessTokenInfo from the JSON of a
// request record.
func decodeAccessTokenInfoJSON(raw []byte) (AccessTokenInfo, error) {
	var rec tokenInfoRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return AccessTokenInfo{}, fmt.Errorf("store: decode token: %w", err)
	}
	return AccessTokenInfo(rec), nil
}
