package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

var t0 = time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)

const (
	tokenURL = "https://mcpd.example/token"
	mcpURL   = "https://mcpd.example/mcp"
	token    = "ory_at_abc.def"
)

func newChecker(t testing.TB, now func() time.Time, nonces *dpop.Nonces) *dpop.Checker {
	t.Helper()
	c, err := dpop.New(dpop.Config{Replay: dpoptest.NewReplay(now), Now: now, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCheckAccepts(t *testing.T) {
	now := func() time.Time { return t0 }
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.RS256, jose.PS256} {
		t.Run(string(alg)+" proof at the token endpoint yields the key's thumbprint", func(t *testing.T) {
			k := dpoptest.NewKey(t, alg)
			c := newChecker(t, now, nil)
			cl := dpoptest.Claims("POST", tokenURL, t0)
			got, err := c.Check(context.Background(), []string{k.Sign(t, cl, nil)}, dpop.Request{Method: "POST", URLs: []string{tokenURL}})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			want := dpop.Proof{JKT: k.JKT(t), JTI: cl["jti"].(string), IssuedAt: t0, Algorithm: string(alg),
				ReplayKey: dpop.ReplayKey(k.JKT(t), cl["jti"].(string)), Expires: t0.Add(dpop.DefaultMaxAge + time.Second)}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("proof (-want +got):\n%s", d)
			}
		})
	}
	k := dpoptest.NewKey(t, jose.ES256)
	accepted := []struct {
		name string
		htu  string
		urls []string
		iat  time.Time
	}{
		{"htu with a query and a fragment matches without them", mcpURL + "?a=1#frag", []string{mcpURL}, t0},
		{"htu with an upper-case scheme and host matches", "HTTPS://MCPD.Example/mcp", []string{mcpURL}, t0},
		{"htu with the default port matches", "https://mcpd.example:443/mcp", []string{mcpURL}, t0},
		{"htu with a dot segment matches", "https://mcpd.example/x/../mcp", []string{mcpURL}, t0},
		{"htu with percent-encoded unreserved characters matches", "https://mcpd.example/%6Dc%70", []string{mcpURL}, t0},
		{"htu with a percent-encoded dot segment matches", "https://mcpd.example/x/%2E%2e/mcp", []string{mcpURL}, t0},
		{"htu with an empty port matches", "https://mcpd.example:/mcp", []string{mcpURL}, t0},
		{"htu of an IPv6 literal with the default port matches", "https://[::1]:443/mcp", []string{"https://[::1]/mcp"}, t0},
		{"htu matches a second name of the endpoint", "http://localhost:8080/mcp", []string{"http://127.0.0.1:8080/mcp", "http://localhost:8080/mcp"}, t0},
		{"iat at the edge of the age window", mcpURL, []string{mcpURL}, t0.Add(-dpop.DefaultMaxAge)},
		{"iat a little in the future", mcpURL, []string{mcpURL}, t0.Add(dpop.DefaultLeeway)},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(t, now, nil)
			cl := dpoptest.Claims("GET", tc.htu, tc.iat)
			cl["ath"] = dpoptest.ATH(token)
			if _, err := c.Check(context.Background(), []string{k.Sign(t, cl, nil)}, dpop.Request{Method: "GET", URLs: tc.urls, AccessToken: token}); err != nil {
				t.Errorf("Check: %v; want accepted", err)
			}
		})
	}
}

func TestCheckRefuses(t *testing.T) {
	now := func() time.Time { return t0 }
	k := dpoptest.NewKey(t, jose.ES256)
	other := dpoptest.NewKey(t, jose.ES256)
	req := dpop.Request{Method: "POST", URLs: []string{mcpURL}, AccessToken: token}
	good := func() map[string]any {
		cl := dpoptest.Claims("POST", mcpURL, t0)
		cl["ath"] = dpoptest.ATH(token)
		return cl
	}
	with := func(k string, v any) map[string]any {
		cl := good()
		if v == nil {
			delete(cl, k)
		} else {
			cl[k] = v
		}
		return cl
	}
	privJWK, err := json.Marshal(jose.JSONWebKey{Key: k.Signer, Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	otherPub := jose.JSONWebKey{Key: other.Signer.Public()}
	hmacJWS := func() string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))},
			(&jose.SignerOptions{}).WithType(dpop.ProofType).WithHeader("jwk", otherPub))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(good())
		jws, err := s.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}
	noneJWS := func() string {
		pub, _ := json.Marshal(jose.JSONWebKey{Key: k.Signer.Public()})
		p, _ := json.Marshal(good())
		return b64(`{"typ":"dpop+jwt","alg":"none","jwk":`+string(pub)+`}`) + "." + b64(string(p)) + "."
	}
	// A proof signed by k that claims other's key.
	swapped := func() string {
		return k.Sign(t, good(), map[jose.HeaderKey]any{"jwk": otherPub})
	}
	// A proof whose jwk carries the private key: go-jose refuses to
	// embed one, so the header is written by hand and signed by k.
	privateJWK := func() string {
		p, _ := json.Marshal(good())
		signingInput := b64(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+string(privJWK)+`}`) + "." + b64(string(p))
		return signingInput + "." + esSign(t, k, signingInput)
	}
	cases := []struct {
		name    string
		headers func() []string
		req     dpop.Request
		want    error
	}{
		{"no proof", func() []string { return nil }, req, dpop.ErrInvalidProof},
		{"two DPoP headers", func() []string { return []string{k.Sign(t, good(), nil), k.Sign(t, good(), nil)} }, req, dpop.ErrInvalidProof},
		{"not a JWS", func() []string { return []string{"not-a-jwt"} }, req, dpop.ErrInvalidProof},
		{"empty proof", func() []string { return []string{""} }, req, dpop.ErrInvalidProof},
		{"a proof longer than 8 KiB", func() []string { return []string{k.Sign(t, with("pad", strings.Repeat("p", 9000)), nil)} }, req, dpop.ErrInvalidProof},
		{"alg none", func() []string { return []string{noneJWS()} }, req, dpop.ErrInvalidProof},
		{"HS256", func() []string { return []string{hmacJWS()} }, req, dpop.ErrInvalidProof},
		{"typ is not dpop+jwt", func() []string { return []string{k.Sign(t, good(), map[jose.HeaderKey]any{"typ": "JWT"})} }, req, dpop.ErrInvalidProof},
		{"no typ", func() []string { return []string{k.Sign(t, good(), map[jose.HeaderKey]any{"typ": nil})} }, req, dpop.ErrInvalidProof},
		{"no jwk", func() []string { return []string{k.Sign(t, good(), map[jose.HeaderKey]any{"jwk": nil})} }, req, dpop.ErrInvalidProof},
		{"jwk with a private part", func() []string { return []string{privateJWK()} }, req, dpop.ErrInvalidProof},
		{"signature by another key than the jwk's", func() []string { return []string{swapped()} }, req, dpop.ErrInvalidProof},
		{"tampered payload", func() []string { return []string{tamper(k.Sign(t, good(), nil))} }, req, dpop.ErrInvalidProof},
		{"wrong htm", func() []string { return []string{k.Sign(t, with("htm", "GET"), nil)} }, req, dpop.ErrInvalidProof},
		{"htm in lower case", func() []string { return []string{k.Sign(t, with("htm", "post"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: another path", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example/token"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: another host", func() []string { return []string{k.Sign(t, with("htu", "https://evil.example/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: another scheme", func() []string { return []string{k.Sign(t, with("htu", "http://mcpd.example/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: another port", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example:8443/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: a trailing slash", func() []string { return []string{k.Sign(t, with("htu", mcpURL+"/"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: the path only in the query", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example/?/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: the path only in the fragment", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example/#/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: an encoded slash is no path separator", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example/x%2F..%2Fmcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"wrong htu: a KELVIN SIGN in the host is not k", func() []string { return []string{k.Sign(t, with("htu", "https://\u212Aelvin.example/mcp"), nil)} }, dpop.Request{Method: "POST", URLs: []string{"https://kelvin.example/mcp"}, AccessToken: token}, dpop.ErrInvalidProof},
		{"wrong htu: a malformed percent-encoding", func() []string { return []string{k.Sign(t, with("htu", "https://mcpd.example/mc%p"), nil)} }, req, dpop.ErrInvalidProof},
		{"htu with user information", func() []string { return []string{k.Sign(t, with("htu", "https://u:p@mcpd.example/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"htu that is relative", func() []string { return []string{k.Sign(t, with("htu", "/mcp"), nil)} }, req, dpop.ErrInvalidProof},
		{"no htu", func() []string { return []string{k.Sign(t, with("htu", nil), nil)} }, req, dpop.ErrInvalidProof},
		{"stale iat", func() []string {
			return []string{k.Sign(t, with("iat", t0.Add(-dpop.DefaultMaxAge-time.Second).Unix()), nil)}
		}, req, dpop.ErrInvalidProof},
		{"future iat", func() []string {
			return []string{k.Sign(t, with("iat", t0.Add(dpop.DefaultLeeway+time.Second).Unix()), nil)}
		}, req, dpop.ErrInvalidProof},
		{"iat as a string", func() []string { return []string{k.Sign(t, with("iat", "1785240000"), nil)} }, req, dpop.ErrInvalidProof},
		{"no iat", func() []string { return []string{k.Sign(t, with("iat", nil), nil)} }, req, dpop.ErrInvalidProof},
		{"no jti", func() []string { return []string{k.Sign(t, with("jti", nil), nil)} }, req, dpop.ErrInvalidProof},
		{"jti longer than 256 bytes", func() []string { return []string{k.Sign(t, with("jti", strings.Repeat("j", 257)), nil)} }, req, dpop.ErrInvalidProof},
		{"ath of another token", func() []string { return []string{k.Sign(t, with("ath", dpoptest.ATH("ory_at_other")), nil)} }, req, dpop.ErrInvalidProof},
		{"no ath with a token", func() []string { return []string{k.Sign(t, with("ath", nil), nil)} }, req, dpop.ErrInvalidProof},
		{"claim names are case-sensitive: HTM is no htm", func() []string {
			cl := good()
			delete(cl, "htm")
			cl["HTM"] = "POST"
			return []string{k.Sign(t, cl, nil)}
		}, req, dpop.ErrInvalidProof},
		{"a claim given twice", func() []string {
			p, _ := json.Marshal(good())
			dup := strings.Replace(string(p), `"htm":"POST"`, `"htm":"GET","htm":"POST"`, 1)
			return []string{k.SignPayload(t, []byte(dup), nil)}
		}, req, dpop.ErrInvalidProof},
		{"claims that are not an object", func() []string { return []string{k.SignPayload(t, []byte(`["jti"]`), nil)} }, req, dpop.ErrInvalidProof},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			replay := dpoptest.NewReplay(now)
			c, err := dpop.New(dpop.Config{Replay: replay, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Check(context.Background(), tc.headers(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v; want %v", err, tc.want)
			}
			var de *dpop.Error
			t.Logf("%v", err)
			if !errors.As(err, &de) || de.Description == "" || de.Code() != tc.want.Error() {
				t.Errorf("error %#v is not an *Error with code %s and a description", err, tc.want)
			}
			if len(replay.Entries()) != 0 {
				t.Errorf("a refused proof left %d replay entries", len(replay.Entries()))
			}
		})
	}
}

func TestCheckReplay(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	k := dpoptest.NewKey(t, jose.ES256)
	c := newChecker(t, clock, nil)
	req := dpop.Request{Method: "POST", URLs: []string{tokenURL}}
	proof := k.Sign(t, dpoptest.Claims("POST", tokenURL, t0), nil)
	if _, err := c.Check(context.Background(), []string{proof}, req); err != nil {
		t.Fatalf("first use: %v", err)
	}
	t.Run("the same proof again is refused", func(t *testing.T) {
		if _, err := c.Check(context.Background(), []string{proof}, req); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("second use: %v; want invalid_dpop_proof", err)
		}
	})
	t.Run("the same jti from another key is another proof", func(t *testing.T) {
		cl := dpoptest.Claims("POST", tokenURL, t0)
		p1 := k.Sign(t, cl, nil)
		p2 := dpoptest.NewKey(t, jose.ES256).Sign(t, cl, nil)
		for i, p := range []string{p1, p2} {
			if _, err := c.Check(context.Background(), []string{p}, req); err != nil {
				t.Fatalf("proof %d: %v", i, err)
			}
		}
	})
	t.Run("a proof accepted at the last instant of its window is still refused as a replay then", func(t *testing.T) {
		// iat exactly MaxAge ago is accepted, so its record must outlive
		// that instant: a clock that reads the same twice (a coarse one)
		// must not let the replay through.
		c := newChecker(t, clock, nil)
		edge := k.Sign(t, dpoptest.Claims("POST", tokenURL, t0.Add(-dpop.DefaultMaxAge)), nil)
		if _, err := c.Check(context.Background(), []string{edge}, req); err != nil {
			t.Fatalf("first use at the edge: %v", err)
		}
		if _, err := c.Check(context.Background(), []string{edge}, req); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("replay at the same instant: %v; want invalid_dpop_proof", err)
		}
	})
	t.Run("a replay key has one size whatever the jti's", func(t *testing.T) {
		// A write-behind cache keeps up to MaxPending of them in memory.
		c := newChecker(t, clock, nil)
		for _, jti := range []string{"j", strings.Repeat("j", 256)} {
			cl := dpoptest.Claims("POST", tokenURL, t0)
			cl["jti"] = jti
			p, err := c.Verify(context.Background(), []string{k.Sign(t, cl, nil)}, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.ReplayKey) != 43 {
				t.Errorf("jti of %d bytes: replay key of %d bytes; want 43", len(jti), len(p.ReplayKey))
			}
		}
	})
	t.Run("Verify spends nothing; Spend spends once", func(t *testing.T) {
		replay := dpoptest.NewReplay(clock)
		c, _ := dpop.New(dpop.Config{Replay: replay, Now: clock})
		proof := k.Sign(t, dpoptest.Claims("POST", tokenURL, t0), nil)
		var p dpop.Proof
		for i := range 2 {
			var err error
			if p, err = c.Verify(context.Background(), []string{proof}, req); err != nil {
				t.Fatalf("Verify %d: %v", i, err)
			}
		}
		if len(replay.Entries()) != 0 {
			t.Fatalf("Verify left %d replay entries", len(replay.Entries()))
		}
		if err := c.Spend(context.Background(), p); err != nil {
			t.Fatalf("Spend: %v", err)
		}
		if err := c.Spend(context.Background(), p); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("second Spend: %v; want invalid_dpop_proof", err)
		}
		if _, err := c.Check(context.Background(), []string{proof}, req); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("Check of the spent proof: %v; want invalid_dpop_proof", err)
		}
	})
	t.Run("a cache error is a server error, not a refusal", func(t *testing.T) {
		boom := errors.New("disk on fire")
		c, err := dpop.New(dpop.Config{Replay: failingReplay{boom}, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Check(context.Background(), []string{k.Sign(t, dpoptest.Claims("POST", tokenURL, t0), nil)}, req)
		if !errors.Is(err, boom) || errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("Check: %v; want the cache's error", err)
		}
	})
	t.Run("the jti is kept until the proof could no longer be accepted", func(t *testing.T) {
		replay := dpoptest.NewReplay(clock)
		c, _ := dpop.New(dpop.Config{Replay: replay, Now: clock})
		cl := dpoptest.Claims("POST", tokenURL, t0.Add(10*time.Second))
		if _, err := c.Check(context.Background(), []string{k.Sign(t, cl, nil)}, req); err != nil {
			t.Fatal(err)
		}
		for key, exp := range replay.Entries() {
			if want := t0.Add(10*time.Second + dpop.DefaultMaxAge + time.Second); !exp.Equal(want) {
				t.Errorf("%s kept until %v; want %v (iat + max age + 1 s)", key, exp, want)
			}
			if want := dpop.ReplayKey(k.JKT(t), cl["jti"].(string)); key != want {
				t.Errorf("replay key %q; want %q (of the key's thumbprint and the jti)", key, want)
			}
		}
	})
}

type failingReplay struct{ err error }

func (f failingReplay) Remember(context.Context, string, time.Time) error { return f.err }

func TestCheckNonce(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("n", 32)), time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	c := newChecker(t, clock, nonces)
	k := dpoptest.NewKey(t, jose.ES256)
	req := dpop.Request{Method: "POST", URLs: []string{tokenURL}}
	check := func(nonce any) error {
		cl := dpoptest.Claims("POST", tokenURL, now)
		if nonce != nil {
			cl["nonce"] = nonce
		}
		_, err := c.Check(context.Background(), []string{k.Sign(t, cl, nil)}, req)
		return err
	}
	if !c.NoncesRequired() || c.Nonce() == "" {
		t.Fatalf("NoncesRequired %v, Nonce %q; want true and a nonce", c.NoncesRequired(), c.Nonce())
	}
	current := c.Nonce()
	t.Run("a proof without a nonce gets use_dpop_nonce", func(t *testing.T) {
		if err := check(nil); !errors.Is(err, dpop.ErrUseNonce) {
			t.Fatalf("Check: %v; want use_dpop_nonce", err)
		}
	})
	t.Run("a made-up nonce gets use_dpop_nonce", func(t *testing.T) {
		if err := check("bm90LWEtbm9uY2Utb2YtdGhpcy1zZXJ2ZXI"); !errors.Is(err, dpop.ErrUseNonce) {
			t.Fatalf("Check: %v; want use_dpop_nonce", err)
		}
	})
	t.Run("the current nonce is accepted", func(t *testing.T) {
		if err := check(current); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("after one rotation the previous nonce is still accepted", func(t *testing.T) {
		now = t0.Add(time.Minute)
		if c.Nonce() == current {
			t.Fatal("the nonce did not rotate")
		}
		if err := check(current); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("after two rotations it gets use_dpop_nonce", func(t *testing.T) {
		now = t0.Add(2 * time.Minute)
		if err := check(current); !errors.Is(err, dpop.ErrUseNonce) {
			t.Fatalf("Check: %v; want use_dpop_nonce", err)
		}
		if err := check(c.Nonce()); err != nil {
			t.Fatalf("with the new nonce: %v", err)
		}
	})
	t.Run("another server key's nonce gets use_dpop_nonce", func(t *testing.T) {
		otherNonces, _ := dpop.NewNonces([]byte(strings.Repeat("m", 32)), time.Minute, clock)
		if err := check(otherNonces.Current()); !errors.Is(err, dpop.ErrUseNonce) {
			t.Fatalf("Check: %v; want use_dpop_nonce", err)
		}
	})
}

func TestNewRefusesSymmetricAndNone(t *testing.T) {
	for _, alg := range []string{"none", "HS256", "HS512", "", "ES257"} {
		if _, err := dpop.New(dpop.Config{Replay: dpoptest.NewReplay(time.Now), Algorithms: []string{alg}}); err == nil {
			t.Errorf("New with algorithm %q: no error", alg)
		}
	}
	if _, err := dpop.New(dpop.Config{}); err == nil {
		t.Error("New without a ReplayCache: no error")
	}
}

func TestValidJKT(t *testing.T) {
	k := dpoptest.NewKey(t, jose.ES256)
	for s, want := range map[string]bool{
		k.JKT(t):                      true,
		k.JKT(t)[:42]:                 false,
		k.JKT(t) + "A":                false,
		strings.Repeat("+", 43):       false,
		"":                            false,
		strings.Repeat("A", 42) + "B": false, // non-canonical trailing bits
	} {
		if got := dpop.ValidJKT(s); got != want {
			t.Errorf("ValidJKT(%q) = %v; want %v", s, got, want)
		}
	}
}

// esSign signs a JWS signing input with an ES256 key (r || s, RFC 7518 §3.4).
func esSign(t *testing.T, k *dpoptest.Key, input string) string {
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.Signer.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return base64.RawURLEncoding.EncodeToString(sig)
}

// tamper changes the payload of a compact JWS after signing.
func tamper(jws string) string {
	parts := strings.Split(jws, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), `"POST"`, `"GET"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

// TestCheckKeyAndAlgorithm pins what go-jose decides for us: the header's
// alg must fit the jwk's key type and curve, and only the jwk picks the
// key (kid, jku, x5u never do).
func TestCheckKeyAndAlgorithm(t *testing.T) {
	now := func() time.Time { return t0 }
	req := dpop.Request{Method: "POST", URLs: []string{tokenURL}}
	ec := dpoptest.NewKey(t, jose.ES256)
	rs := dpoptest.NewKey(t, jose.RS256)
	jwkOf := func(k *dpoptest.Key) map[string]any {
		var m map[string]any
		b, _ := json.Marshal(jose.JSONWebKey{Key: k.Signer.Public()})
		json.Unmarshal(b, &m)
		return m
	}
	// raw signs a header and the claims with sign, which returns the
	// signature's bytes for the signing input.
	raw := func(header map[string]any, sign func(input []byte) []byte) string {
		h, _ := json.Marshal(header)
		p, _ := json.Marshal(dpoptest.Claims("POST", tokenURL, t0))
		in := b64(string(h)) + "." + b64(string(p))
		return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
	}
	// es signs with an EC key and hash h, r || s each size bytes long.
	es := func(k *dpoptest.Key, h crypto.Hash, size int) func([]byte) []byte {
		return func(in []byte) []byte {
			d := h.New()
			d.Write(in)
			r, s, err := ecdsa.Sign(rand.Reader, k.Signer.(*ecdsa.PrivateKey), d.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			sig := make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
			return sig
		}
	}
	rsa256 := func(in []byte) []byte {
		d := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, rs.Signer.(*rsa.PrivateKey), crypto.SHA256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	refused := []struct {
		name  string
		proof string
	}{
		{"a P-256 key under ES384 (a SHA-384 signature by the P-256 key)", raw(map[string]any{"typ": dpop.ProofType, "alg": "ES384", "jwk": jwkOf(ec)}, es(ec, crypto.SHA384, 48))},
		{"a P-256 key under ES512", raw(map[string]any{"typ": dpop.ProofType, "alg": "ES512", "jwk": jwkOf(ec)}, es(ec, crypto.SHA512, 66))},
		{"an RSA key under ES256", raw(map[string]any{"typ": dpop.ProofType, "alg": "ES256", "jwk": jwkOf(rs)}, rsa256)},
		{"an EC key under RS256", raw(map[string]any{"typ": dpop.ProofType, "alg": "RS256", "jwk": jwkOf(ec)}, es(ec, crypto.SHA256, 32))},
		{"an EC key under EdDSA", raw(map[string]any{"typ": dpop.ProofType, "alg": "EdDSA", "jwk": jwkOf(ec)}, es(ec, crypto.SHA256, 32))},
		{"a symmetric jwk under ES256", raw(map[string]any{"typ": dpop.ProofType, "alg": "ES256", "jwk": map[string]any{"kty": "oct", "k": b64(strings.Repeat("k", 32))}}, es(ec, crypto.SHA256, 32))},
		{"an X25519 jwk under EdDSA", raw(map[string]any{"typ": dpop.ProofType, "alg": "EdDSA", "jwk": map[string]any{"kty": "OKP", "crv": "X25519", "x": b64(strings.Repeat("x", 32))}}, es(ec, crypto.SHA256, 32))},
		{"a jwk point off its curve", raw(map[string]any{"typ": dpop.ProofType, "alg": "ES256", "jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": b64(strings.Repeat("x", 32)), "y": b64(strings.Repeat("y", 32))}}, es(ec, crypto.SHA256, 32))},
		{"an RSA key of 1024 bits", func() string {
			small, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			return (&dpoptest.Key{Alg: jose.RS256, Signer: small}).Sign(t, dpoptest.Claims("POST", tokenURL, t0), nil)
		}()},
		{"kid naming a key while the jwk is another's", raw(map[string]any{"typ": dpop.ProofType, "alg": "RS256", "kid": "ec", "jku": "https://attacker.example/jwks", "jwk": jwkOf(ec)}, rsa256)},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			if _, err := newChecker(t, now, nil).Check(context.Background(), []string{tc.proof}, req); !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("Check: %v; want invalid_dpop_proof", err)
			}
		})
	}
	t.Run("kid, jku and x5u are ignored: the jwk is the key", func(t *testing.T) {
		proof := raw(map[string]any{"typ": dpop.ProofType, "alg": "ES256", "kid": "rs", "jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/cert", "jwk": jwkOf(ec)}, es(ec, crypto.SHA256, 32))
		p, err := newChecker(t, now, nil).Check(context.Background(), []string{proof}, req)
		if err != nil || p.JKT != ec.JKT(t) {
			t.Fatalf("Check: %+v, %v; want accepted with the jwk's thumbprint", p, err)
		}
	})
}
