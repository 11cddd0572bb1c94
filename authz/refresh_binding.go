package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// A refresh token names its grant. The store keeps only the newest rotated
// refresh tokens of a grant (as tombstones, so that reuse of one revokes
// the grant), which bounds what a grant that rotates for ever takes on
// disk; a rotated token older than that is unknown to the store. To still
// recognise its reuse, every refresh token this server issues carries its
// grant (fosite's request id) and a MAC over the token's signature and the
// grant, under a key derived from the global secret:
//
//	ory_rt_<key>.<signature>~<base64url(mac[16] || grant id)>
//
// fosite only ever sees the token without the suffix, so its signature,
// its storage key and its HMAC check are fosite's own. A presented token
// that the store does not know but whose binding holds was issued by this
// server for that grant and has since been rotated: its reuse revokes the
// grant, as fosite does for the tombstones the store keeps.

// bindingSep separates a refresh token from its binding; fosite's tokens
// are base64url with one dot and never contain it.
const bindingSep = "~"

// bindingMACSize is the length of the binding's MAC, truncated.
const bindingMACSize = 16

// strategy is fosite's HMAC-SHA strategy with grant-bound refresh tokens.
type strategy struct {
	*oauth2.HMACSHAStrategy
	bindKey []byte
}

var _ oauth2.CoreStrategy = (*strategy)(nil)

// GenerateRefreshToken returns fosite's refresh token with the binding of
// r's grant appended; the signature is fosite's.
func (st *strategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, sig, err := st.HMACSHAStrategy.GenerateRefreshToken(ctx, r)
	if err != nil || token == "" {
		return token, sig, err
	}
	return token + bindingSep + st.binding(sig, r.GetID()), sig, nil
}

// RefreshTokenSignature is fosite's signature of the token without its
// binding.
func (st *strategy) RefreshTokenSignature(ctx context.Context, token string) string {
	return st.HMACSHAStrategy.RefreshTokenSignature(ctx, unbound(token))
}

// ValidateRefreshToken is fosite's check of the token without its binding.
func (st *strategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return st.HMACSHAStrategy.ValidateRefreshToken(ctx, r, unbound(token))
}

func (st *strategy) binding(sig, grant string) string {
	return base64.RawURLEncoding.EncodeToString(append(st.bindingMAC(sig, grant), grant...))
}

func (st *strategy) bindingMAC(sig, grant string) []byte {
	m := hmac.New(sha256.New, st.bindKey)
	m.Write([]byte(sig))
	m.Write([]byte{0})
	m.Write([]byte(grant))
	return m.Sum(nil)[:bindingMACSize]
}

// boundGrant returns the grant a refresh token names, when its binding
// holds and the token itself carries this server's HMAC.
func (st *strategy) boundGrant(ctx context.Context, token string) (string, bool) {
	plain, b, ok := strings.Cut(token, bindingSep)
	if !ok {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(b)
	if err != nil || len(raw) <= bindingMACSize {
		return "", false
	}
	mac, grant := raw[:bindingMACSize], string(raw[bindingMACSize:])
	sig := st.HMACSHAStrategy.RefreshTokenSignature(ctx, plain)
	if sig == "" || !hmac.Equal(mac, st.bindingMAC(sig, grant)) {
		return "", false
	}
	if err := st.Enigma.Validate(ctx, strings.TrimPrefix(plain, refreshTokenPrefix)); err != nil {
		return "", false
	}
	return grant, true
}

// refreshTokenPrefix is what fosite's HMACSHAStrategy puts before a
// refresh token.
const refreshTokenPrefix = "ory_rt_"

// unbound is the token fosite issued: the presented one without its
// binding.
func unbound(token string) string {
	plain, _, _ := strings.Cut(token, bindingSep)
	return plain
}
