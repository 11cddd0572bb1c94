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
	Index      int // dangling index entries
}

// Sweep removes every expired code, token, PKCE session, JTI, consent and
// refresh successor, dynamic clients that never completed an authorization
// within Options.UnactivatedClientTTL, and index entries that point at
// nothing. Each kind is swept in its own write transaction, so the
// writer lock is never held for long.
func (s *Store) Sweep(ctx context.Context) (SweepStats, error) {
	now := s.now()
	var st SweepStats
	steps := []struct {
		n  *int
		fn func(tx *wtx) (int, error)
	}{
		{&st.Codes, func(tx *wtx) (int, error) { return sweepTokens(tx, kindCode, now) }},
		{&st.Access, func(tx *wtx) (int, error) { return sweepTokens(tx, kindAccess, now) }},
		{&st.Refresh, func(tx *wtx) (int, error) { return sweepTokens(tx, kindRefresh, now) }},
		{&st.PKCE, func(tx *wtx) (int, error) { return sweepTokens(tx, kindPKCE, now) }},
		{&st.JTIs, func(tx *wtx) (int, error) { return sweepExpiring(tx.bucket(bucketJTIs), now) }},
		{&st.Successors, func(tx *wtx) (int, error) { return sweepExpiring(tx.bucket(bucketSuccessors), now) }},
		{&st.Consents, func(tx *wtx) (int, error) { return sweepConsents(tx, now) }},
		{&st.Clients, func(tx *wtx) (int, error) { return sweepClients(tx, now.Add(-s.clientTT)) }},
		{&st.Index, sweepIndex},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		err := s.update(ctx, func(tx *wtx) error {
			n, err := step.fn(tx)
			*step.n = n
			return err
		})
		if err != nil {
			return st, fmt.Errorf("sweep: %w", err)
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
				s.log.Error("store: janitor sweep failed", "err", err)
			}
			continue
		}
		if st != (SweepStats{}) {
			s.log.Info("store: janitor swept", "codes", st.Codes, "access", st.Access,
				"refresh", st.Refresh, "pkce", st.PKCE, "jtis", st.JTIs, "consents", st.Consents,
				"successors", st.Successors, "clients", st.Clients, "index", st.Index)
		}
	}
}

func isExpired(v []byte, now time.Time) bool {
	exp, ok := expiryOf(v)
	return ok && !now.Before(exp)
}

// keysWhere returns copies of the keys of b whose entries match.
func keysWhere(b wbucket, match func(k, v []byte) (bool, error)) ([][]byte, error) {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		ok, err := match(k, v)
		if ok {
			keys = append(keys, bytes.Clone(k))
		}
		return err
	})
	return keys, err
}

// deleteWhere deletes the entries of b that match and returns how many.
func deleteWhere(b wbucket, match func(k, v []byte) (bool, error)) (int, error) {
	keys, err := keysWhere(b, match)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func sweepTokens(tx *wtx, kind string, now time.Time) (int, error) {
	keys, err := keysWhere(tx.bucket(kindBucket(kind)), func(_, v []byte) (bool, error) {
		return isExpired(v, now), nil
	})
	if err != nil {
		return 0, err
	}
	// deleteToken also removes the token's index entries.
	for _, k := range keys {
		if err := deleteToken(tx, kind, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func sweepExpiring(b wbucket, now time.Time) (int, error) {
	return deleteWhere(b, func(_, v []byte) (bool, error) { return isExpired(v, now), nil })
}

func sweepConsents(tx *wtx, now time.Time) (int, error) {
	return deleteWhere(tx.bucket(bucketConsents), func(_, v []byte) (bool, error) {
		c, err := decodeConsent(v)
		if err != nil {
			return false, err
		}
		return c.expired(now), nil
	})
}

// sweepClients deletes dynamic clients created before cutoff that never
// completed an authorization.
func sweepClients(tx *wtx, cutoff time.Time) (int, error) {
	ids, err := keysWhere(tx.bucket(bucketClients), func(_, v []byte) (bool, error) {
		var rec clientRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("decode client: %w", err)
		}
		return rec.Source == SourceDynamic && rec.ActivatedAt.IsZero() && rec.CreatedAt.Before(cutoff), nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := deleteClient(tx, string(id)); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// sweepIndex removes index entries whose record is gone: grant entries
// without a token, and client or subject entries without a grant.
func sweepIndex(tx *wtx) (int, error) {
	grants := tx.bucket(bucketGrants)
	n, err := deleteWhere(grants, func(k, _ []byte) (bool, error) {
		i := bytes.Index(k, []byte(sep))
		return i < 0 || len(k) < i+3 || !isKind(string(k[i+1:i+2])) ||
			tx.bucket(kindBucket(string(k[i+1:i+2]))).Get(k[i+3:]) == nil, nil
	})
	if err != nil {
		return 0, err
	}
	for _, index := range []string{bucketClientGrants, bucketSubjectGrants} {
		stale, err := deleteWhere(tx.bucket(index), func(k, _ []byte) (bool, error) {
			i := bytes.LastIndex(k, []byte(sep))
			if i < 0 {
				return true, nil
			}
			prefix := grantPrefix(string(k[i+1:]))
			g, _ := grants.Cursor().Seek(prefix)
			return g == nil || !bytes.HasPrefix(g, prefix), nil
		})
		if err != nil {
			return 0, err
		}
		n += stale
	}
	return n, nil
}
