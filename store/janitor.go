package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// SweepStats counts what one janitor pass removed.
type SweepStats struct {
	Codes      int // authorization codes
	Access     int // access tokens
	Refresh    int // refresh tokens
	PKCE       int // PKCE sessions
	JTIs       int // client-assertion JTIs
	Consents   int // consents
	Successors int // refresh successors
	Clients    int // dynamic clients never activated
	Sessions   int // login sessions
	Pending    int // pending authorizations
	Ceremonies int // WebAuthn ceremonies never finished
	Index      int // dangling index entries
	IDPStates  int // sign-ins started at an identity provider and never finished
}

// LogAttrs are the counts as log attributes, every kind named, so that
// both backends' "janitor swept" lines say the same.
func (st SweepStats) LogAttrs() []any {
	return []any{"codes", st.Codes, "access", st.Access, "refresh", st.Refresh, "pkce", st.PKCE,
		"jtis", st.JTIs, "consents", st.Consents, "successors", st.Successors, "clients", st.Clients,
		"sessions", st.Sessions, "pending", st.Pending, "ceremonies", st.Ceremonies, "index", st.Index,
		"idp_states", st.IDPStates}
}

// sweepBatch is the most entries one janitor write deletes: a sweep of a
// large backlog is many short writes, so it never holds the writer slot
// for long, and the undo journal of a write that shares its commit stays
// small.
const sweepBatch = 512

// Sweep removes every expired code, token, PKCE session, JTI, consent,
// refresh successor, login session, pending authorization, WebAuthn
// ceremony and unfinished identity-provider sign-in, dynamic clients that
// never completed an authorization within Options.UnactivatedClientTTL,
// and index entries that point at nothing. Each kind is swept in writes of
// at most sweepBatch entries.
func (s *Store) Sweep(ctx context.Context) (SweepStats, error) {
	now := s.now()
	var st SweepStats
	// Each step deletes up to sweepBatch entries from the key from on and
	// returns the key to go on from, or nil when it reached the end.
	steps := []struct {
		n  *int
		fn func(tx *wtx, from []byte) (int, []byte, error)
	}{
		{&st.Codes, func(tx *wtx, from []byte) (int, []byte, error) { return sweepTokens(tx, kindCode, now, from) }},
		{&st.Access, func(tx *wtx, from []byte) (int, []byte, error) { return sweepTokens(tx, kindAccess, now, from) }},
		{&st.Refresh, func(tx *wtx, from []byte) (int, []byte, error) { return sweepTokens(tx, kindRefresh, now, from) }},
		{&st.PKCE, func(tx *wtx, from []byte) (int, []byte, error) { return sweepTokens(tx, kindPKCE, now, from) }},
		{&st.JTIs, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketJTIs), now, from)
		}},
		{&st.Successors, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketSuccessors), now, from)
		}},
		{&st.Consents, func(tx *wtx, from []byte) (int, []byte, error) { return sweepConsents(tx, now, from) }},
		{&st.Sessions, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketSessions), now, from)
		}},
		{&st.Pending, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketPending), now, from)
		}},
		{&st.Ceremonies, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketWebAuthnSessions), now, from)
		}},
		{&st.IDPStates, func(tx *wtx, from []byte) (int, []byte, error) {
			return sweepExpiring(tx.bucket(bucketIDPStates), now, from)
		}},
		{&st.Clients, func(tx *wtx, from []byte) (int, []byte, error) { return sweepClients(tx, now.Add(-s.clientTT), from) }},
		{&st.Index, sweepGrantIndex},
		{&st.Index, func(tx *wtx, from []byte) (int, []byte, error) { return sweepOwnerIndex(tx, bucketClientGrants, from) }},
		{&st.Index, func(tx *wtx, from []byte) (int, []byte, error) { return sweepOwnerIndex(tx, bucketSubjectGrants, from) }},
	}
	for _, step := range steps {
		var from []byte
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			var n int
			var next []byte
			err := s.update(ctx, func(tx *wtx) error {
				var err error
				n, next, err = step.fn(tx, from)
				return err
			})
			if err != nil {
				return st, fmt.Errorf("sweep: %w", err)
			}
			*step.n += n
			if next == nil {
				break
			}
			from = next
		}
	}
	return st, nil
}

// RunJanitor calls Sweep every interval until ctx is done, logging what it
// removed (counts only) and any error.
func (s *Store) RunJanitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.Sweep(ctx)
		if err != nil {
			if ctx.Err() == nil {
				quietUnavailable(s.log, "store: janitor sweep failed", err)
			}
			continue
		}
		if st != (SweepStats{}) {
			s.log.Info("store: janitor swept", st.LogAttrs()...)
		}
	}
}

func isExpired(v []byte, now time.Time) bool {
	exp, ok := expiryOf(v)
	return ok && !now.Before(exp)
}

// keysWhere returns copies of up to sweepBatch keys of b, from the key
// from on (from the first when nil), whose entries match, and the key to
// go on from: nil when the scan reached the end.
func keysWhere(b wbucket, from []byte, match func(k, v []byte) (bool, error)) (keys [][]byte, next []byte, err error) {
	c := b.Cursor()
	var k, v []byte
	if from == nil {
		k, v = c.First()
	} else {
		k, v = c.Seek(from)
	}
	for ; k != nil; k, v = c.Next() {
		ok, err := match(k, v)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		keys = append(keys, bytes.Clone(k))
		if len(keys) == sweepBatch {
			if k, _ = c.Next(); k != nil {
				next = bytes.Clone(k)
			}
			return keys, next, nil
		}
	}
	return keys, nil, nil
}

// deleteWhere deletes what keysWhere finds and returns how many, and the
// key to go on from.
func deleteWhere(b wbucket, from []byte, match func(k, v []byte) (bool, error)) (int, []byte, error) {
	keys, next, err := keysWhere(b, from, match)
	if err != nil {
		return 0, nil, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, nil, err
		}
	}
	return len(keys), next, nil
}

func sweepTokens(tx *wtx, kind string, now time.Time, from []byte) (int, []byte, error) {
	keys, next, err := keysWhere(tx.bucket(kindBucket(kind)), from, func(_, v []byte) (bool, error) {
		return isExpired(v, now), nil
	})
	if err != nil {
		return 0, nil, err
	}
	// deleteToken also removes the token's index entries.
	for _, k := range keys {
		if err := deleteToken(tx, kind, k); err != nil {
			return 0, nil, err
		}
	}
	return len(keys), next, nil
}

func sweepExpiring(b wbucket, now time.Time, from []byte) (int, []byte, error) {
	return deleteWhere(b, from, func(_, v []byte) (bool, error) { return isExpired(v, now), nil })
}

func sweepConsents(tx *wtx, now time.Time, from []byte) (int, []byte, error) {
	return deleteWhere(tx.bucket(bucketConsents), from, func(_, v []byte) (bool, error) {
		c, err := decodeConsent(v)
		if err != nil {
			return false, err
		}
		return c.expired(now), nil
	})
}

// sweepClients deletes dynamic clients created before cutoff that never
// completed an authorization.
func sweepClients(tx *wtx, cutoff time.Time, from []byte) (int, []byte, error) {
	ids, next, err := keysWhere(tx.bucket(bucketClients), from, func(_, v []byte) (bool, error) {
		var rec clientRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("decode client: %w", err)
		}
		return rec.Source == SourceDynamic && rec.ActivatedAt.IsZero() && rec.CreatedAt.Before(cutoff), nil
	})
	if err != nil {
		return 0, nil, err
	}
	for _, id := range ids {
		if err := deleteClient(tx, string(id)); err != nil {
			return 0, nil, err
		}
	}
	return len(ids), next, nil
}

// sweepGrantIndex removes grant index entries without a token.
func sweepGrantIndex(tx *wtx, from []byte) (int, []byte, error) {
	return deleteWhere(tx.bucket(bucketGrants), from, func(k, _ []byte) (bool, error) {
		i := bytes.Index(k, []byte(sep))
		return i < 0 || len(k) < i+3 || !isKind(string(k[i+1:i+2])) ||
			tx.bucket(kindBucket(string(k[i+1:i+2]))).Get(k[i+3:]) == nil, nil
	})
}

// sweepOwnerIndex removes client or subject index entries without a grant.
func sweepOwnerIndex(tx *wtx, index string, from []byte) (int, []byte, error) {
	grants := tx.bucket(bucketGrants)
	return deleteWhere(tx.bucket(index), from, func(k, _ []byte) (bool, error) {
		i := bytes.LastIndex(k, []byte(sep))
		if i < 0 {
			return true, nil
		}
		prefix := grantPrefix(string(k[i+1:]))
		g, _ := grants.Cursor().Seek(prefix)
		return g == nil || !bytes.HasPrefix(g, prefix), nil
	})
}
