package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
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
	return makeRoomFair(b, max, now, nil)
}

// makeRoomFair is makeRoom for records that have an owner (owner reads it
// from a value): at the cap the expired entries go, and then the entries
// of whoever holds the most, each owner's closest to expiry first, so one
// owner adding and adding evicts only their own. In SQL, the order of
// eviction after the expired rows is row_number() OVER (PARTITION BY owner
// ORDER BY expiry DESC) DESC, then expiry, then key. With a nil owner it
// is makeRoom.
func makeRoomFair(b wbucket, max int, now time.Time, owner func(v []byte) string) error {
	if max <= 0 || b.Stats().KeyN < max {
		return nil
	}
	type entry struct {
		key   []byte
		exp   time.Time
		owner string
		rank  int // 1 for the owner's entry furthest from expiry, 2 for the next…
	}
	var live []entry
	err := b.ForEach(func(k, v []byte) error {
		exp, ok := expiryOf(v)
		if !ok {
			exp = time.Unix(1<<62, 0) // never expires: evicted last
		}
		e := entry{key: bytes.Clone(k), exp: exp}
		if owner != nil {
			e.owner = owner(v)
		}
		live = append(live, e)
		return nil
	})
	if err != nil {
		return err
	}
	if owner != nil {
		slices.SortFunc(live, func(a, b entry) int {
			if c := strings.Compare(a.owner, b.owner); c != 0 {
				return c
			}
			if c := b.exp.Compare(a.exp); c != 0 {
				return c
			}
			return bytes.Compare(b.key, a.key)
		})
		for i := range live {
			live[i].rank = 1
			if i > 0 && live[i-1].owner == live[i].owner {
				live[i].rank = live[i-1].rank + 1
			}
		}
	}
	slices.SortFunc(live, func(a, b entry) int {
		// Expired entries first, whoever holds them: they go whatever
		// the count.
		if ae, be := !now.Before(a.exp), !now.Before(b.exp); ae != be {
			if ae {
				return -1
			}
			return 1
		}
		if c := b.rank - a.rank; c != 0 {
			return c
		}
		if c := a.exp.Compare(b.exp); c != 0 {
			return c
		}
		return bytes.Compare(a.key, b.key)
	})
	keep := RoomToKeep(max)
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
