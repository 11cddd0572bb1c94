package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

// nopReplay accepts every jti: the benchmark measures the proof check, not
// a cache.
type nopReplay struct{}

func (nopReplay) Remember(context.Context, string, time.Time) error { return nil }

// BenchmarkCheck is the CPU cost of checking one proof with an access
// token (what /mcp pays per request on top of the bearer check), per
// algorithm. Proofs are signed before the timer starts.
func BenchmarkCheck(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256} {
		b.Run(string(alg), func(b *testing.B) {
			k := dpoptest.NewKey(b, alg)
			now := time.Now()
			c, err := dpop.New(dpop.Config{Replay: nopReplay{}, Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			const n = 256
			proofs := make([]string, n)
			for i := range proofs {
				cl := dpoptest.Claims("POST", mcpURL, now)
				cl["jti"] = fmt.Sprint("bench-", i)
				cl["ath"] = dpoptest.ATH(token)
				proofs[i] = k.Sign(b, cl, nil)
			}
			req := dpop.Request{Method: "POST", URLs: []string{mcpURL}, AccessToken: token}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Check(context.Background(), []string{proofs[i%n]}, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkECDSAVerifyReference is a bare P-256 signature check, the floor
// of BenchmarkCheck/ES256: run both in one go for their ratio.
func BenchmarkECDSAVerifyReference(b *testing.B) {
	k := dpoptest.NewKey(b, jose.ES256)
	priv := k.Signer.(*ecdsa.PrivateKey)
	h := sha256.Sum256([]byte("a DPoP proof's signing input"))
	sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&priv.PublicKey, h[:], sig) {
			b.Fatal("verify failed")
		}
	}
}
