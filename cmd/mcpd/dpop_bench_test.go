package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/dpoptest"
)

// proofPool is a run's DPoP proofs, signed before the timer starts so the
// benchmarks measure the server's work, not the client's signing.
type proofPool struct {
	key    *ecdsa.PrivateKey
	signer jose.Signer
	proofs []string
	next   atomic.Int64
}

func newProofPool(b *testing.B) *proofPool {
	b.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{EmbedJWK: true}).WithType(dpop.ProofType))
	if err != nil {
		b.Fatal(err)
	}
	return &proofPool{key: k, signer: s}
}

func (p *proofPool) sign(b testing.TB, htm, htu, token string) string {
	cl := map[string]any{"jti": randomJTI(), "htm": htm, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		cl["ath"] = dpoptest.ATH(token)
	}
	payload, _ := json.Marshal(cl)
	jws, err := p.signer.Sign(payload)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func randomJTI() string {
	var r [12]byte
	rand.Read(r[:])
	return fmt.Sprintf("%x", r)
}

// fill signs n proofs for POST htu with token.
func (p *proofPool) fill(b *testing.B, n int, htu, token string) {
	p.proofs = make([]string, n)
	for i := range p.proofs {
		p.proofs[i] = p.sign(b, http.MethodPost, htu, token)
	}
	p.next.Store(0)
}

// take returns the next signed proof, or signs one when the pool is spent
// (requests outside the measured loop: connect, close).
func (p *proofPool) take(b testing.TB, htm, htu, token string) string {
	if i := p.next.Add(1) - 1; htm == http.MethodPost && int(i) < len(p.proofs) {
		return p.proofs[i]
	}
	return p.sign(b, htm, htu, token)
}

// poolTransport presents token with the DPoP scheme and a proof from pool.
type poolTransport struct {
	b     testing.TB
	pool  *proofPool
	token string
}

func (t poolTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	u := *r.URL
	u.RawQuery = ""
	r.Header.Set("Authorization", "DPoP "+t.token)
	r.Header.Set("DPoP", t.pool.take(t.b, r.Method, u.String(), t.token))
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkDPoPWhoami is tools/call whoami through the whole server with a
// bearer token and with a DPoP-bound token side by side, on one server:
// the difference is the proof check (parse, ES256 verify, thumbprint) and
// the replay record. Proofs are signed before the timer starts.
func BenchmarkDPoPWhoami(b *testing.B) {
	issuer := benchServer(b)
	hc := &http.Client{}
	id, secret := benchConfidential(b, hc, issuer)
	pool := newProofPool(b)
	var bearer, bound benchTokens
	benchPost(b, hc, issuer+"/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials&scope=notes%3Aread"), [2]string{id, secret}, http.StatusOK, &bearer)
	tokenReq, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=notes%3Aread"))
	tokenReq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tokenReq.SetBasicAuth(id, secret)
	tokenReq.Header.Set("DPoP", pool.sign(b, http.MethodPost, issuer+"/token", ""))
	resp, err := hc.Do(tokenReq)
	if err != nil {
		b.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&bound)
	resp.Body.Close()
	if bound.AccessToken == "" {
		b.Fatal("no DPoP token")
	}
	params := &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}
	connect := func(rt http.RoundTripper) *mcp.ClientSession {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: issuer + "/mcp", HTTPClient: &http.Client{Transport: rt}, DisableStandaloneSSE: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return cs
	}
	for _, kind := range []string{"bearer", "dpop"} {
		for _, par := range []bool{false, true} {
			name := kind + "/serial"
			if par {
				name = kind + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				var rt http.RoundTripper = bearerTransport{token: bearer.AccessToken}
				if kind == "dpop" {
					rt = poolTransport{b: b, pool: pool, token: bound.AccessToken}
				}
				n := 1
				if par {
					n = 16
				}
				sessions := make(chan *mcp.ClientSession, n)
				for range n {
					sessions <- connect(rt)
				}
				if kind == "dpop" {
					pool.fill(b, b.N, issuer+"/mcp", bound.AccessToken)
				}
				b.ResetTimer()
				call := func(cs *mcp.ClientSession) bool {
					if res, err := cs.CallTool(context.Background(), params); err != nil || res.IsError {
						b.Errorf("whoami: %v %+v", err, res)
						return false
					}
					return true
				}
				if par {
					b.RunParallel(func(pb *testing.PB) {
						cs := <-sessions
						defer func() { sessions <- cs }()
						for pb.Next() {
							if !call(cs) {
								return
							}
						}
					})
				} else {
					cs := <-sessions
					for i := 0; i < b.N; i++ {
						if !call(cs) {
							break
						}
					}
					sessions <- cs
				}
				b.StopTimer()
				close(sessions)
				for cs := range sessions {
					cs.Close()
				}
			})
		}
	}
}

// BenchmarkDPoPClientCredentials is the client_credentials grant without
// and with a DPoP proof, side by side on one server, from 16 goroutines
// per core. Proofs are signed before the timer starts.
func BenchmarkDPoPClientCredentials(b *testing.B) {
	issuer := benchServer(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	id, secret := benchConfidential(b, hc, issuer)
	pool := newProofPool(b)
	body := "grant_type=client_credentials&scope=notes%3Aread"
	for _, kind := range []string{"bearer", "dpop"} {
		b.Run(kind, func(b *testing.B) {
			if kind == "dpop" {
				pool.fill(b, b.N, issuer+"/token", "")
			}
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(id, secret)
					if kind == "dpop" {
						req.Header.Set("DPoP", pool.take(b, http.MethodPost, issuer+"/token", ""))
					}
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					var tok struct {
						TokenType string `json:"token_type"`
					}
					json.NewDecoder(resp.Body).Decode(&tok)
					resp.Body.Close()
					if want := map[string]string{"bearer": "bearer", "dpop": "DPoP"}[kind]; resp.StatusCode != http.StatusOK || tok.TokenType != want {
						b.Errorf("status %d token_type %q; want 200 %s", resp.StatusCode, tok.TokenType, want)
						return
					}
				}
			})
		})
	}
}
