package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpd/mcpd/dpop"
)

// Key is a client's DPoP key.
type Key struct {
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

// NewKey makes a key for alg: ES256, ES384, ES512, EdDSA, RS256 or PS256
// (RSA 2048).
func NewKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("dpoptest: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Alg: alg, Signer: priv}
}

// PublicJWK is the key's public JWK, as a proof's jwk header carries it.
func (k *Key) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public()}
}

// JKT is the key's RFC 7638 SHA-256 thumbprint, base64url: the value of
// cnf.jkt and dpop_jkt.
func (k *Key) JKT(t testing.TB) string {
	t.Helper()
	pub := k.PublicJWK()
	th, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(th)
}

// Sign signs claims as a proof (typ dpop+jwt, the key's public JWK in the
// jwk header). headers replace header parameters, or drop them with a nil
// value; a "jwk" entry replaces the embedded key (to claim another key
// than the one that signs), and "jwk": nil leaves the key out.
func (k *Key) Sign(t testing.TB, claims map[string]any, headers map[jose.HeaderKey]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return k.SignPayload(t, payload, headers)
}

// SignPayload is Sign for a payload of any bytes, JSON or not.
func (k *Key) SignPayload(t testing.TB, payload []byte, headers map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	opts.WithType(dpop.ProofType)
	if _, set := headers["jwk"]; !set {
		opts.EmbedJWK = true
	}
	for h, v := range headers {
		if v == nil {
			delete(opts.ExtraHeaders, h)
			continue
		}
		opts.WithHeader(h, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Signer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Proof signs a fresh proof for htm and htu issued at iat, bound to token
// (ath) when token is not empty.
func (k *Key) Proof(t testing.TB, htm, htu string, iat time.Time, token string) string {
	t.Helper()
	cl := Claims(htm, htu, iat)
	if token != "" {
		cl["ath"] = ATH(token)
	}
	return k.Sign(t, cl, nil)
}

// Claims are the claims of a proof for htm and htu issued at iat, with a
// jti no other proof has.
func Claims(htm, htu string, iat time.Time) map[string]any {
	return map[string]any{"jti": rand.Text(), "htm": htm, "htu": htu, "iat": iat.Unix()}
}

// ATH is the ath claim of a proof presented with token: the base64url
// SHA-256 of its ASCII bytes.
func ATH(token string) string {
	s := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(s[:])
}
