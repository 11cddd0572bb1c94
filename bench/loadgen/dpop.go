package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The DPoP side of the load (RFC 9449): the *-dpop scenarios are their
// bearer namesakes with DPoP-bound tokens and a fresh proof on every
// request. Proofs are signed while the workers are prepared, before the
// warm-up, so the measured window holds the server's work (checking a
// proof) and not the client's (signing one), which shares the same cores;
// a worker that runs out signs the rest live, and the result counts them.
// The server must run without --dpop-nonce: signed-ahead proofs carry no
// nonce.

// proofSigner signs DPoP proofs with one ES256 key.
type proofSigner struct {
	signer jose.Signer
}

func newProofSigner() (*proofSigner, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, err
	}
	return &proofSigner{signer: s}, nil
}

// sign returns a proof for a request with htm and htu presenting token
// ("" for none: no ath).
func (p *proofSigner) sign(htm, htu, token string) (string, error) {
	var jti [16]byte
	rand.Read(jti[:])
	cl := map[string]any{"jti": hex.EncodeToString(jti[:]), "htm": htm, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		cl["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// proofPool is one worker's proofs for one request shape, signed ahead.
type proofPool struct {
	signer         *proofSigner
	htm, htu, tokn string
	proofs         []string
	live           *atomic.Int64 // proofs signed inside the measured run
}

// newProofPool signs n proofs for htm htu with token. A proof is good for
// about a minute (the server's iat window), so runs with a pool stay short.
func (e *runEnv) newProofPool(htm, htu, token string, n int) (*proofPool, error) {
	p := &proofPool{signer: e.dpop, htm: htm, htu: htu, tokn: token, proofs: make([]string, 0, n), live: &e.liveProofs}
	for range n {
		s, err := e.dpop.sign(htm, htu, token)
		if err != nil {
			return nil, err
		}
		p.proofs = append(p.proofs, s)
	}
	return p, nil
}

// take returns the next proof; token, when not "", replaces the pool's
// (the proofs signed ahead are then useless and signed live).
func (p *proofPool) take(token string) (string, error) {
	if token != p.tokn {
		p.tokn, p.proofs = token, nil
	}
	if n := len(p.proofs); n > 0 {
		s := p.proofs[n-1]
		p.proofs = p.proofs[:n-1]
		return s, nil
	}
	p.live.Add(1)
	return p.signer.sign(p.htm, p.htu, p.tokn)
}

// perWorker is how many proofs each worker signs ahead.
func (e *runEnv) perWorker(workers int) int {
	return max(1, e.dpopProofs/max(1, workers))
}

// postFormDPoP is postForm with a DPoP header.
func (e *runEnv) postFormDPoP(ctx context.Context, path string, form url.Values, basicID, basicSecret, proof string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.target+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return e.doJSON(req, want, out)
}

// whoamiDPoPScenario is whoami with a DPoP-bound token: the shared grant
// is exchanged with a proof of env's key, and every call carries
// "Authorization: DPoP" and a proof for POST /mcp with the token's hash.
func whoamiDPoPScenario(ctx context.Context, env *runEnv, i int) (op, error) {
	if err := env.prepareShared(ctx, true, false); err != nil {
		return nil, err
	}
	if !strings.EqualFold(env.tokenType, "DPoP") {
		return nil, fmt.Errorf("the token endpoint answered token_type %q to a DPoP proof; want DPoP", env.tokenType)
	}
	u := env.target + env.mcpPath
	pool, err := env.newProofPool(http.MethodPost, u, env.token, env.perWorker(env.workers))
	if err != nil {
		return nil, err
	}
	s := &mcpSession{env: env, url: u, token: env.token, proofs: pool}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	return s.whoami, nil
}

// clientCredentialsDPoPScenario is client-credentials with a proof for
// POST /token on every request, each answered with a DPoP-bound token.
func clientCredentialsDPoPScenario(ctx context.Context, env *runEnv, _ int) (op, error) {
	if err := env.prepareShared(ctx, false, true); err != nil {
		return nil, err
	}
	pool, err := env.newProofPool(http.MethodPost, env.target+"/token", "", env.perWorker(env.workers))
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes:read"}}
	return func(ctx context.Context) error {
		proof, err := pool.take("")
		if err != nil {
			return err
		}
		var tok tokenResponse
		if err := env.postFormDPoP(ctx, "/token", form, env.ccID, env.ccSecret, proof, http.StatusOK, &tok); err != nil {
			return err
		}
		if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "DPoP") {
			return fmt.Errorf("client_credentials with a proof: token_type %q", tok.TokenType)
		}
		return nil
	}, nil
}

// refreshDPoPScenario is refresh with a public client's DPoP-bound grant:
// every rotation carries a proof of the key the grant is bound to.
func refreshDPoPScenario(ctx context.Context, env *runEnv, _ int) (op, error) {
	id, err := env.registerPublic(ctx, "loadgen-refresh-dpop")
	if err != nil {
		return nil, err
	}
	tok, err := env.browser.grant(ctx, id)
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "DPoP") {
		return nil, fmt.Errorf("the code exchange with a proof answered token_type %q", tok.TokenType)
	}
	pool, err := env.newProofPool(http.MethodPost, env.target+"/token", "", env.perWorker(env.workers))
	if err != nil {
		return nil, err
	}
	rt := tok.RefreshToken
	return func(ctx context.Context) error {
		proof, err := pool.take("")
		if err != nil {
			return err
		}
		var next tokenResponse
		if err := env.postFormDPoP(ctx, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {id}}, "", "", proof, http.StatusOK, &next); err != nil {
			return err
		}
		if next.RefreshToken == "" {
			return errors.New("refresh answered without a refresh token")
		}
		rt = next.RefreshToken
		return nil
	}, nil
}
