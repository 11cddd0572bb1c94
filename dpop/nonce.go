package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNoncePeriod is how often Nonces rotate when NewNonces is given 0.
const DefaultNoncePeriod = 5 * time.Minute

// Nonces are server-provided DPoP nonces (RFC 9449 §8, §9) that need no
// storage: a nonce is the number of its rotation period and an HMAC of it
// under a server key, so every process holding the key accepts it, a
// restart keeps it valid, and nobody without the key can make one. A
// nonce is accepted during its own period and the next, so one fetched
// just before a rotation still works while the client learns the new one
// from the DPoP-Nonce header of its next answer.
type Nonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

const (
	nonceMACBytes = 16
	nonceBytes    = 8 + nonceMACBytes
)

// NewNonces returns nonces keyed by key (at least 32 bytes, secret) that
// rotate every period (0 → DefaultNoncePeriod). now nil means time.Now.
func NewNonces(key []byte, period time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: the nonce key must be at least 32 bytes")
	}
	if period < 0 {
		return nil, errors.New("dpop: the nonce period must not be negative")
	}
	if period == 0 {
		period = DefaultNoncePeriod
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), period: period, now: now}, nil
}

func (n *Nonces) window() uint64 { return uint64(n.now().UnixNano() / int64(n.period)) }

func (n *Nonces) make(w uint64) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, nonceBytes), w)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("mcpd dpop nonce\x00"))
	m.Write(b)
	b = m.Sum(b)[:nonceBytes]
	return base64.RawURLEncoding.EncodeToString(b)
}

// Current returns the nonce of the current period, for a DPoP-Nonce header.
func (n *Nonces) Current() string { return n.make(n.window()) }

// Valid reports whether s is a nonce of the current or the previous period.
func (n *Nonces) Valid(s string) bool {
	if base64.RawURLEncoding.DecodedLen(len(s)) != nonceBytes {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != nonceBytes {
		return false
	}
	w, cur := binary.BigEndian.Uint64(b[:8]), n.window()
	if w != cur && w+1 != cur {
		return false
	}
	return hmac.Equal([]byte(n.make(w)), []byte(s))
}
