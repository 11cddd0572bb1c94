package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// encodeExpiring lays a record out as its 8-byte expiry prefix followed by
// its JSON, so the janitor and makeRoom read expiries without decoding.
func encodeExpiring(expiresAt time.Time, rec any) ([]byte, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return append(expiryPrefix(expiresAt), raw...), nil
}

func decodeExpiring(v []byte, rec any) error {
	if len(v) < 8 {
		return errors.New("corrupt record")
	}
	return json.Unmarshal(v[8:], rec)
}

func utcOrNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		return now().UTC()
	}
	return t.UTC()
}

// makeRoom keeps a bucket of expiring records (expiry-prefixed values)
// under max entries before one is added: when it holds max or more, the
// expired entries go, and then, while more than nine tenths of max remain,
// the entries closest to their expiry. Evicting a tenth at once keeps a
// flood from paying a full scan per insert. max ≤ 0 means no cap.
func makeRoom(b wbucket, max int, now time.Time) error {
	if max <= 0 || b.Stats().KeyN < max {
		return nil
	}
	type entry struct {
		key []byte
		exp time.Time
	}
	var live []entry
	err := b.ForEach(func(k, v []byte) error {
		exp, ok := expiryOf(v)
		if !ok {
			exp = time.Unix(1<<62, 0) // never expires: evicted last
		}
		live = append(live, entry{key: bytes.Clone(k), exp: exp})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(live, func(a, b entry) int { return a.exp.Compare(b.exp) })
	keep := max * 9 / 10
	for i, e := range live {
		if len(live)-i <= keep && now.Before(e.exp) {
			break
		}
		if err := b.Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}
