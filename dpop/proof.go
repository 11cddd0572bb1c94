package dpop

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	// go-jose's JSON: member names match case-sensitively and a member
	// given twice is an error, as in the proof's header, so "HTM" is no
	// htm and no two parsers can read different claims out of one proof.
	"github.com/go-jose/go-jose/v4/json"
)

// ProofType is the typ header every DPoP proof carries.
const ProofType = "dpop+jwt"

// Defaults of Config.
const (
	DefaultMaxAge = time.Minute      // how old a proof's iat may be
	DefaultLeeway = 30 * time.Second // how far in the future its iat may be
)

// Limits on what a proof may hold; anything larger is refused before any
// cryptography runs.
const (
	maxProofBytes = 8 << 10
	maxJTIBytes   = 256
	minRSABits    = 2048
	maxRSABits    = 4096
)

// Algorithms returns the JWS algorithms a Checker accepts by default, the
// value of dpop_signing_alg_values_supported: asymmetric ones only.
func Algorithms() []string {
	return []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}
}

// supported are the algorithms Config.Algorithms may name.
var supported = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// ReplayCache remembers the proofs a Checker accepted.
type ReplayCache interface {
	// Remember records key until exp. It returns an error wrapping
	// ErrReplay when key is recorded already and has not expired, and
	// records nothing then.
	Remember(ctx context.Context, key string, exp time.Time) error
}

// Config configures a Checker. Replay is required.
type Config struct {
	// Algorithms accepted; nil → Algorithms(). Only asymmetric JWS
	// algorithms are allowed.
	Algorithms []string
	// MaxAge is how old a proof's iat may be; 0 → DefaultMaxAge. A proof's
	// jti is remembered until iat + MaxAge.
	MaxAge time.Duration
	// Leeway is how far in the future a proof's iat may be, for clocks
	// that run ahead; 0 → DefaultLeeway.
	Leeway time.Duration
	// Replay remembers jtis.
	Replay ReplayCache
	// Nonces, when not nil, makes every proof carry a valid server nonce.
	Nonces *Nonces
	// Now is the clock; nil → time.Now.
	Now func() time.Time
}

// Checker checks DPoP proofs. It is safe for concurrent use.
type Checker struct {
	algs     []string
	joseAlgs []jose.SignatureAlgorithm
	maxAge   time.Duration
	leeway   time.Duration
	replay   ReplayCache
	nonces   *Nonces
	now      func() time.Time
}

// New checks cfg and returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.Replay == nil {
		return nil, errors.New("dpop: Config.Replay is required")
	}
	algs := cfg.Algorithms
	if algs == nil {
		algs = Algorithms()
	}
	if len(algs) == 0 {
		return nil, errors.New("dpop: no algorithms")
	}
	c := &Checker{
		algs:   slices.Clone(algs),
		maxAge: cfg.MaxAge,
		leeway: cfg.Leeway,
		replay: cfg.Replay,
		nonces: cfg.Nonces,
		now:    cfg.Now,
	}
	for _, a := range algs {
		if !slices.Contains(supported, a) {
			return nil, fmt.Errorf("dpop: algorithm %q is not an asymmetric JWS algorithm this server supports", a)
		}
		c.joseAlgs = append(c.joseAlgs, jose.SignatureAlgorithm(a))
	}
	if c.maxAge <= 0 {
		c.maxAge = DefaultMaxAge
	}
	if c.leeway <= 0 {
		c.leeway = DefaultLeeway
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Algorithms returns the accepted algorithms, for metadata.
func (c *Checker) Algorithms() []string { return slices.Clone(c.algs) }

// NoncesRequired reports whether every proof must carry a server nonce.
func (c *Checker) NoncesRequired() bool { return c.nonces != nil }

// Nonce returns the nonce to send in a DPoP-Nonce header; "" when nonces
// are off.
func (c *Checker) Nonce() string {
	if c.nonces == nil {
		return ""
	}
	return c.nonces.Current()
}

// Request is what a proof must match.
type Request struct {
	// Method is the request's method (htm).
	Method string
	// URLs are the URLs the request may have been sent to (htu): the
	// endpoint's public URL and any other name it is reached by.
	URLs []string
	// AccessToken, when not empty, is the token presented with the proof;
	// ath must be its hash.
	AccessToken string
}

// Proof is an accepted proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url without padding: the cnf.jkt of a token bound to it.
	JKT       string
	JTI       string
	IssuedAt  time.Time
	Algorithm string
	// ReplayKey is what a replay cache records the proof under: the
	// base64url SHA-256 of its key's thumbprint and its jti, so equal jtis
	// of two keys never meet, and a record takes 43 bytes however long
	// the jti (a write-behind cache holds many in memory).
	ReplayKey string
	// Expires is how long its ReplayKey must be remembered: past the
	// last instant the proof can be accepted (iat + MaxAge).
	Expires time.Time
}

// claims are the payload members a proof is checked on.
type claims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   string          `json:"ath"`
	Nonce *string         `json:"nonce"`
}

// parsed is a proof whose signature verified with its own jwk.
type parsed struct {
	alg    string
	jkt    string
	claims claims
	iat    time.Time
}

// Check checks the DPoP header values of one request (all of them: more
// than one is refused) against req and, when every rule holds, remembers
// the proof's jti. Its errors are *Error values wrapping ErrInvalidProof or
// ErrUseNonce, or an error of the ReplayCache, which the caller answers as
// a server error.
func (c *Checker) Check(ctx context.Context, headers []string, req Request) (Proof, error) {
	p, err := c.Verify(ctx, headers, req)
	if err != nil {
		return Proof{}, err
	}
	if err := c.Spend(ctx, p); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// Spend remembers p's jti through the ReplayCache: an *Error wrapping
// ErrInvalidProof when it was spent before, the cache's error otherwise.
func (c *Checker) Spend(ctx context.Context, p Proof) error {
	if err := c.replay.Remember(ctx, p.ReplayKey, p.Expires); err != nil {
		if errors.Is(err, ErrReplay) {
			return invalid("the DPoP proof was used before (jti)")
		}
		return fmt.Errorf("dpop: remembering the proof: %w", err)
	}
	return nil
}

// Verify is Check without spending the jti: every rule but the replay
// check. The caller must spend the proof before it acts on it, with Spend
// or by recording its ReplayKey until Expires itself (as the token
// endpoint does, in the transaction that issues the tokens, so the record
// is as durable as they are and a refused request records nothing).
func (c *Checker) Verify(_ context.Context, headers []string, req Request) (Proof, error) {
	switch len(headers) {
	case 0:
		return Proof{}, invalid("a DPoP proof is required")
	case 1:
	default:
		return Proof{}, invalid("more than one DPoP header")
	}
	p, err := c.parse(headers[0])
	if err != nil {
		return Proof{}, err
	}
	cl := p.claims
	if cl.HTM != req.Method {
		return Proof{}, invalid("the DPoP proof's htm is not the method of this request")
	}
	if !htuMatches(cl.HTU, req.URLs) {
		return Proof{}, invalid("the DPoP proof's htu is not the URL of this endpoint")
	}
	now := c.now()
	if p.iat.Before(now.Add(-c.maxAge)) {
		return Proof{}, invalid("the DPoP proof is too old (iat)")
	}
	if p.iat.After(now.Add(c.leeway)) {
		return Proof{}, invalid("the DPoP proof is issued in the future (iat)")
	}
	if req.AccessToken != "" && !athMatches(cl.ATH, req.AccessToken) {
		return Proof{}, invalid("the DPoP proof's ath is not the hash of the access token")
	}
	if c.nonces != nil {
		if cl.Nonce == nil {
			return Proof{}, useNonce("a DPoP nonce is required")
		}
		if !c.nonces.Valid(*cl.Nonce) {
			return Proof{}, useNonce("the DPoP nonce is not current")
		}
	}
	return Proof{
		JKT:       p.jkt,
		JTI:       cl.JTI,
		IssuedAt:  p.iat,
		Algorithm: p.alg,
		ReplayKey: ReplayKey(p.jkt, cl.JTI),
		// A second past the last instant the proof is accepted (iat +
		// MaxAge itself is): a record is gone at its expiry, and a
		// clock that reads that instant twice must still find it.
		Expires: p.iat.Add(c.maxAge + time.Second),
	}, nil
}

// parse verifies a proof's form and signature and decodes its claims. It
// checks everything that needs neither the request nor the clock.
func (c *Checker) parse(proof string) (*parsed, error) {
	if proof == "" || len(proof) > maxProofBytes {
		return nil, invalid("the DPoP proof is empty or longer than 8 KiB")
	}
	if strings.Count(proof, ".") != 2 {
		return nil, invalid("the DPoP proof is not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(proof, c.joseAlgs)
	if err != nil {
		return nil, invalid("the DPoP proof is not a JWS signed with one of " + strings.Join(c.algs, ", "))
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("the DPoP proof must carry one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != ProofType {
		return nil, invalid("the DPoP proof's typ is not " + ProofType)
	}
	if !slices.Contains(c.algs, h.Algorithm) {
		return nil, invalid("the DPoP proof's alg is not one of " + strings.Join(c.algs, ", "))
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return nil, invalid("the DPoP proof has no jwk header")
	}
	if !jwk.Valid() || !jwk.IsPublic() {
		return nil, invalid("the DPoP proof's jwk must be a public key")
	}
	if k, ok := jwk.Key.(*rsa.PublicKey); ok {
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, invalid(fmt.Sprintf("the DPoP proof's RSA key must have %d to %d bits", minRSABits, maxRSABits))
		}
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("the DPoP proof's signature does not verify with its jwk")
	}
	var cl claims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, invalid("the DPoP proof's claims are not a JSON object")
	}
	if cl.JTI == "" || len(cl.JTI) > maxJTIBytes {
		return nil, invalid(fmt.Sprintf("the DPoP proof's jti must be 1 to %d bytes", maxJTIBytes))
	}
	if cl.HTM == "" || cl.HTU == "" {
		return nil, invalid("the DPoP proof has no htm or htu")
	}
	iat, ok := numericDate(cl.IAT)
	if !ok {
		return nil, invalid("the DPoP proof's iat is not a number of seconds")
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("the DPoP proof's jwk has no thumbprint")
	}
	return &parsed{
		alg:    h.Algorithm,
		jkt:    base64.RawURLEncoding.EncodeToString(thumb),
		claims: cl,
		iat:    iat,
	}, nil
}

// numericDate reads a JWT NumericDate (RFC 7519 §2): seconds since the
// epoch, possibly with a fraction. raw is one JSON value; a JSON number
// is a subset of what strconv.ParseFloat reads.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// ReplayKey is the Proof.ReplayKey of a proof by the key with thumbprint
// jkt with this jti.
func ReplayKey(jkt, jti string) string {
	sum := sha256.Sum256([]byte(jkt + ":" + jti))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// athMatches reports whether ath is the base64url SHA-256 hash of token
// (RFC 9449 §4.2), compared in constant time.
func athMatches(ath, token string) bool {
	var got [sha256.Size]byte
	if base64.RawURLEncoding.EncodedLen(sha256.Size) != len(ath) {
		return false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(ath)); err != nil || n != sha256.Size {
		return false
	}
	want := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a JWK given as
// JSON, base64url without padding, or an error when it is not a public
// key. It is how a dpop_jkt is computed.
func Thumbprint(jwkJSON []byte) (string, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(jwkJSON); err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	if !k.Valid() || !k.IsPublic() {
		return "", errors.New("dpop: not a public key")
	}
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// ValidJKT reports whether s has the form of a SHA-256 JWK thumbprint:
// 43 characters of unpadded base64url.
func ValidJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
