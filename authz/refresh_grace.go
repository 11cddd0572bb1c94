package authz

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/dpop"
)

// successor is what a rotation leaves behind for a second use of the same
// refresh token inside the grace window.
type successor struct {
	ClientID  string          `json:"client_id"`
	JKT       string          `json:"jkt,omitempty"` // the DPoP key the successor is bound to
	ExpiresAt time.Time       `json:"expires_at"`
	Body      json.RawMessage `json:"body"`
}

// handleRefresh rotates a refresh token. Refreshes of one token are
// serialized; inside RefreshGrace a repeated refresh gets the sealed
// response of the first, after it fosite detects the reuse and revokes the
// whole grant. jkt is the thumbprint of the request's DPoP proof, "" for
// none: a DPoP-bound refresh token is refused, before fosite sees it,
// without a proof or (public clients) with another key, and a successor
// bound to a key is replayed only to a proof of that key.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request, proof dpop.Proof) {
	jkt := proof.JKT
	ctx := r.Context()
	token := r.PostForm.Get("refresh_token")
	if token == "" {
		s.writeTokenError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The refresh_token parameter is missing."))
		return
	}
	// A replayed answer must meet the same request rules as a fresh one.
	if err := s.checkResources(r.PostForm); err != nil {
		s.writeTokenError(w, r, nil, err)
		return
	}
	sig := s.strategy.RefreshTokenSignature(ctx, token)
	unlock, err := s.lockToken(ctx, s.refreshLocks, "refresh:"+sig)
	if err != nil {
		s.writeTokenError(w, r, nil, err)
		return
	}
	defer unlock()

	active, err := s.preCheckRefresh(ctx, sig, jkt)
	if err != nil {
		s.writeTokenError(w, r, nil, err)
		return
	}
	// A successor is written in the transaction that rotates the token, so
	// a token still active (read under its lock) has none to replay.
	if s.cfg.RefreshGrace > 0 && !active {
		body, ok, err := s.replaySuccessor(ctx, r, sig, token, jkt)
		if err != nil {
			s.writeTokenError(w, r, nil, err)
			return
		}
		if ok {
			// The same answer again spends this proof all the same.
			if err := s.spendProof(ctx, proof); err != nil {
				s.writeTokenError(w, r, nil, err)
				return
			}
			s.obs.TokenIssued("refresh_token")
			s.writeTokenBody(w, body)
			return
		}
	}

	// The rotation and its successor commit together: one durable write,
	// and no window in which the old token is rotated but a retry would
	// find no successor and revoke the grant.
	var finish func(context.Context, fosite.AccessRequester, []byte) error
	if s.cfg.RefreshGrace > 0 {
		finish = func(txCtx context.Context, ar fosite.AccessRequester, body []byte) error {
			exp := s.now().Add(s.cfg.RefreshGrace)
			ds, _ := ar.GetSession().(*fosite.DefaultSession)
			plain, err := json.Marshal(successor{ClientID: ar.GetClient().GetID(), JKT: sessionJKT(ds), ExpiresAt: exp, Body: body})
			if err != nil {
				return err
			}
			sealed, err := s.seal(token, sig, plain)
			if err != nil {
				return err
			}
			return s.store.PutRefreshSuccessor(txCtx, sig, sealed, exp)
		}
	}
	ar, body, err := s.exchange(ctx, r, proof, finish)
	if err != nil {
		if errors.Is(err, fosite.ErrInvalidGrant) && errors.Is(err, fosite.ErrNotFound) {
			err = s.forgottenReuse(ctx, token, sig, err)
		}
		s.writeTokenError(w, r, ar, err)
		return
	}
	s.writeTokenBody(w, body)
}

// forgottenReuse handles a refresh token the store does not know. When
// the token is one this server issued for a grant (refresh_binding.go), it
// was rotated so long ago that the store forgot it, and its use now is
// reuse: the grant is revoked, as fosite revokes it for a rotated token
// the store still keeps. Otherwise the answer stays fosite's, failed.
func (s *Server) forgottenReuse(ctx context.Context, token, sig string, failed error) error {
	grant, ok := s.strategy.boundGrant(ctx, token)
	if !ok {
		return failed
	}
	if _, err := s.store.GetRefreshTokenSession(ctx, sig, nil); !errors.Is(err, fosite.ErrNotFound) {
		return failed // known after all (or the store failed): fosite's answer stands
	}
	err := s.inTx(ctx, func(ctx context.Context) error {
		if err := s.store.RevokeRefreshToken(ctx, grant); err != nil {
			return err
		}
		return s.store.RevokeAccessToken(ctx, grant)
	})
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	s.log.Warn("refresh token reused long after its rotation: grant revoked")
	return fosite.ErrInvalidGrant.WithHint("The refresh token was already used.")
}

// replaySuccessor returns the stored response of an earlier rotation of
// token when it is still inside the grace window and the same client asks,
// with a proof of the same DPoP key when the successor is bound to one.
func (s *Server) replaySuccessor(ctx context.Context, r *http.Request, sig, token, jkt string) ([]byte, bool, error) {
	sealed, err := s.store.GetRefreshSuccessor(ctx, sig)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fosite.ErrServerError.WithWrap(err)
	}
	plain, err := s.open(token, sig, sealed)
	if err != nil {
		return nil, false, nil
	}
	var succ successor
	if err := json.Unmarshal(plain, &succ); err != nil || !s.now().Before(succ.ExpiresAt) {
		return nil, false, nil
	}
	client, err := s.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return nil, false, err
	}
	if client.GetID() != succ.ClientID {
		return nil, false, nil
	}
	if succ.JKT != jkt {
		// Not a retry of the same exchange; and not reuse either, so
		// the grant is left alone.
		return nil, false, errInvalidDPoPProof.WithHint("The refresh token was just exchanged with another DPoP key, or without one.")
	}
	var prev struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(succ.Body, &prev); err != nil {
		return nil, false, fosite.ErrServerError.WithWrap(err)
	}
	if err := s.checkRefreshScope(r.PostForm, strings.Fields(prev.Scope)); err != nil {
		return nil, false, err
	}
	// The successor may have been revoked since (/revoke, a removed user)
	// or rotated in turn: then there is nothing to hand out again. This
	// is not reuse after the window, so the grant is left as it is.
	if _, err := s.store.GetAccessTokenSession(ctx, s.strategy.AccessTokenSignature(ctx, prev.AccessToken), &fosite.DefaultSession{}); err != nil {
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, ErrNotFound) {
			return nil, false, fosite.ErrInvalidGrant.WithHint("The refresh token was already used and the tokens it was exchanged for are no longer valid.")
		}
		return nil, false, fosite.ErrServerError.WithWrap(err)
	}
	return succ.Body, true, nil
}

// successorAEAD derives an AES-256-GCM key from the old refresh token, so
// only its holder can read the successor tokens.
func (s *Server) successorAEAD(token string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(token), s.sealKey, "mcpd refresh successor", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Server) seal(token, sig string, plain []byte) ([]byte, error) {
	aead, err := s.successorAEAD(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, []byte(sig)), nil
}

func (s *Server) open(token, sig string, sealed []byte) ([]byte, error) {
	aead, err := s.successorAEAD(token)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed successor too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], []byte(sig))
}
