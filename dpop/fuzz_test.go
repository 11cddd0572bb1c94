package dpop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

// FuzzCheck feeds arbitrary DPoP header values to a Checker. Whatever the
// input, Check must not panic, must refuse with an *Error or accept, and an
// accepted proof must name a well-formed thumbprint and a jti; the seeds
// are proofs that pass and proofs that fail each rule.
func FuzzCheck(f *testing.F) {
	now := func() time.Time { return t0 }
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256} {
		k := dpoptest.NewKey(f, alg)
		f.Add(k.Sign(f, dpoptest.Claims("POST", mcpURL, t0), nil))
		cl := dpoptest.Claims("POST", mcpURL, t0)
		cl["ath"] = dpoptest.ATH(token)
		f.Add(k.Sign(f, cl, nil))
		f.Add(k.Sign(f, dpoptest.Claims("GET", mcpURL+"?q#f", t0), map[jose.HeaderKey]any{"typ": "JWT"}))
	}
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add(b64(`{"alg":"none","typ":"dpop+jwt"}`) + "." + b64(`{"jti":"x","htm":"POST","htu":"`+mcpURL+`","iat":1}`) + ".")
	f.Fuzz(func(t *testing.T, proof string) {
		c, err := dpop.New(dpop.Config{Replay: dpoptest.NewReplay(now), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []dpop.Request{
			{Method: "POST", URLs: []string{mcpURL}},
			{Method: "POST", URLs: []string{mcpURL}, AccessToken: token},
		} {
			p, err := c.Check(context.Background(), []string{proof}, req)
			if err != nil {
				var de *dpop.Error
				if !errors.As(err, &de) || !errors.Is(err, dpop.ErrInvalidProof) {
					t.Fatalf("Check refused with %T %v; want an *Error wrapping ErrInvalidProof", err, err)
				}
				continue
			}
			if !dpop.ValidJKT(p.JKT) || p.JTI == "" {
				t.Fatalf("accepted proof %+v has a malformed thumbprint or no jti", p)
			}
		}
	})
}
