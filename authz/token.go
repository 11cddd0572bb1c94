package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/keymutex"
)

// grantStartKey is the session Extra key holding when the grant began, in
// Unix seconds; it caps the sliding refresh token lifetime.
const grantStartKey = "grant_start"

func (s *Server) newTokenSession(subject string) *fosite.DefaultSession {
	return &fosite.DefaultSession{
		Subject:  subject,
		Username: subject,
		Extra:    map[string]interface{}{grantStartKey: s.now().Unix()},
	}
}

// handleToken is POST /token for authorization_code, refresh_token and
// client_credentials. Every answer carries Cache-Control: no-store.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	s.setNonceHeader(w)
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		writeTooLarge(w)
		return
	case http.StatusBadRequest:
		s.writeTokenError(w, r, nil, fosite.ErrInvalidRequest.WithHint("The request body could not be read."))
		return
	}
	// A DPoP proof is checked (and its jti spent) before anything else;
	// whether the request needed one is decided with the grant.
	proof, err := s.tokenProof(r)
	if err != nil {
		s.writeTokenError(w, r, nil, err)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		s.handleRefresh(w, r, proof)
		return
	case "authorization_code":
		// fosite reads a code, checks PKCE and only then invalidates it;
		// exchanges of one code run one at a time, so a second one finds
		// it used (and revokes what it issued) instead of racing it.
		sig := s.strategy.AuthorizeCodeSignature(r.Context(), r.PostForm.Get("code"))
		unlock, err := s.lockToken(r.Context(), s.codeLocks, "code:"+sig)
		if err != nil {
			s.writeTokenError(w, r, nil, err)
			return
		}
		defer unlock()
		if err := s.preCheckCode(r.Context(), sig, proof.JKT); err != nil {
			s.writeTokenError(w, r, nil, err)
			return
		}
	case "client_credentials", "":
		// fosite answers a missing grant_type with invalid_request.
	default:
		// fosite answers invalid_request; RFC 6749 §5.2 has a code for it.
		s.writeTokenError(w, r, nil, fosite.ErrUnsupportedGrantType.WithHint("This server supports authorization_code, refresh_token and client_credentials."))
		return
	}
	ar, body, err := s.exchange(r.Context(), r, proof, nil)
	if err != nil {
		s.writeTokenError(w, r, ar, err)
		return
	}
	s.writeTokenBody(w, body)
}

// lockToken serializes the exchanges of one code or refresh token: in this
// process with locks, so one request at a time waits on the storage, and
// across the processes that share the storage with its LockKey.
func (s *Server) lockToken(ctx context.Context, locks *keymutex.Mutex, key string) (func(), error) {
	unlock := locks.Lock(key)
	release, err := s.store.LockKey(ctx, key)
	if err != nil {
		unlock()
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	return func() {
		release()
		unlock()
	}, nil
}

// exchange runs one token request through fosite and returns the JSON body
// of its successful response; proof is the request's DPoP proof (JKT ""
// without one), to whose key the tokens are bound (bindDPoP) and whose jti
// is spent with them. When finish is not nil, the tokens fosite
// stores and whatever finish stores (with the context it is given) commit
// in one transaction, or not at all: finish's error fails the request.
func (s *Server) exchange(ctx context.Context, r *http.Request, proof dpop.Proof, finish func(ctx context.Context, ar fosite.AccessRequester, body []byte) error) (fosite.AccessRequester, []byte, error) {
	if err := s.checkResources(r.PostForm); err != nil {
		return nil, nil, err
	}
	sess := &fosite.DefaultSession{}
	ar, err := s.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		return ar, nil, err
	}
	grant := ar.GetGrantTypes()
	switch {
	case grant.ExactOne("client_credentials"):
		c := ar.GetClient()
		scopes := s.knownScopes(ar.GetRequestedScopes())
		if len(ar.GetRequestedScopes()) == 0 {
			scopes = s.knownScopes(c.GetScopes())
		}
		for _, sc := range scopes {
			ar.GrantScope(sc)
		}
		ar.GrantAudience(s.resourceURL)
		if ds, ok := ar.GetSession().(*fosite.DefaultSession); ok {
			ds.Subject = "client:" + c.GetID()
			ds.Username = ds.Subject
		}
	case grant.ExactOne("refresh_token"):
		if err := s.checkRefreshScope(r.PostForm, ar.GetGrantedScopes()); err != nil {
			return ar, nil, err
		}
		s.capRefreshLifetime(ar)
	case grant.ExactOne("authorization_code"):
		s.capRefreshLifetime(ar)
	}
	if err := s.bindDPoP(ar, proof.JKT); err != nil {
		return ar, nil, err
	}
	body, err := s.respond(ctx, ar, proof, finish)
	if err != nil {
		return ar, nil, err
	}
	gt := grant[0]
	s.obs.TokenIssued(gt)
	s.touchClient(ctx, ar.GetClient())
	return ar, body, nil
}

// respond issues the tokens of a validated request and returns the JSON
// body. With finish or a DPoP proof it opens the transaction first, so
// the proof's jti record, fosite's writes (its own BeginTX joins this one)
// and finish's share one commit. The
// transaction opens only after NewAccessRequest: fosite's refresh-reuse
// revocation runs there and must commit on its own even though the
// request fails.
func (s *Server) respond(ctx context.Context, ar fosite.AccessRequester, proof dpop.Proof, finish func(context.Context, fosite.AccessRequester, []byte) error) ([]byte, error) {
	txCtx := ctx
	inTx := finish != nil || proof.JKT != ""
	if inTx {
		var err error
		if txCtx, err = s.store.BeginTX(ctx); err != nil {
			return nil, fosite.ErrServerError.WithWrap(err)
		}
		// A panic that unwinds past the open transaction ends it, so the
		// store's other writers are not left waiting for it.
		defer func() {
			if p := recover(); p != nil {
				s.store.Rollback(txCtx)
				panic(p)
			}
		}()
	}
	err := s.spendProof(txCtx, proof)
	var resp fosite.AccessResponder
	if err == nil {
		resp, err = s.oauth.NewAccessResponse(txCtx, ar)
	}
	var body []byte
	if err == nil {
		if ds, ok := ar.GetSession().(*fosite.DefaultSession); ok && sessionJKT(ds) != "" {
			resp.SetTokenType(tokenTypeDPoP)
		}
		if body, err = json.Marshal(resp.ToMap()); err != nil {
			err = fosite.ErrServerError.WithWrap(err)
		}
	}
	if err == nil && finish != nil {
		if err = finish(txCtx, ar, body); err != nil {
			err = fosite.ErrServerError.WithWrap(err)
		}
	}
	if inTx {
		if err != nil {
			s.store.Rollback(txCtx)
		} else if cerr := s.store.Commit(txCtx); cerr != nil {
			err = fosite.ErrServerError.WithWrap(cerr)
		}
	}
	if err != nil {
		return nil, err
	}
	return body, nil
}

// checkRefreshScope refuses a refresh request whose scope parameter names a
// known scope the grant does not have (RFC 6749 §6); fosite ignores the
// parameter and would answer with the original scopes as if nothing had
// been asked. Unknown scopes are dropped, as at /authorize, so a client
// that asked for offline_access there may ask for it again. The grant's
// scopes are kept: the refresh token's must not change.
func (s *Server) checkRefreshScope(form url.Values, granted []string) error {
	for _, sc := range s.knownScopes(strings.Fields(form.Get("scope"))) {
		if !contains(granted, sc) {
			return fosite.ErrInvalidScope.WithHintf("The scope %q was not granted to this refresh token.", sc)
		}
	}
	return nil
}

// capRefreshLifetime keeps a sliding refresh token lifetime within
// RefreshTokenMaxLifespan of the grant's start.
func (s *Server) capRefreshLifetime(ar fosite.AccessRequester) {
	ds, ok := ar.GetSession().(*fosite.DefaultSession)
	if !ok {
		return
	}
	start, ok := unixSeconds(ds.Extra[grantStartKey])
	if !ok {
		return
	}
	limit := time.Unix(start, 0).Add(s.cfg.RefreshTokenMaxLifespan).UTC()
	if exp := ds.GetExpiresAt(fosite.RefreshToken); exp.IsZero() || exp.After(limit) {
		ds.SetExpiresAt(fosite.RefreshToken, limit)
	}
}

// unixSeconds reads a number that may have gone through JSON.
func unixSeconds(v interface{}) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// touchClient records the client's first completed authorization and, at
// most once a minute, its last use.
func (s *Server) touchClient(ctx context.Context, fc fosite.Client) {
	c, ok := fc.(*Client)
	if !ok {
		return
	}
	now := s.now()
	if !c.ActivatedAt.IsZero() && now.Sub(c.LastUsedAt) < time.Minute {
		return
	}
	err := s.store.UpdateClient(ctx, c.ID, func(cl *Client) error {
		cl.LastUsedAt = now
		if cl.ActivatedAt.IsZero() {
			cl.ActivatedAt = now
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrUnavailable) { // the storage logs a full disk
			s.log.Warn("recording client use failed", "client_id", c.ID, "err", err)
		}
		return
	}
	c.LastUsedAt = now
	if c.ActivatedAt.IsZero() {
		c.ActivatedAt = now
	}
}

func (s *Server) writeTokenBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeTokenError writes an RFC 6749 §5.2 error. invalid_client is 401, so
// clients whose registration is gone register again.
func (s *Server) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	switch {
	case errors.Is(err, ErrUnavailable):
		rfc = unavailableError()
		w.Header().Set("Retry-After", retryAfter)
	case rfc.CodeField >= 500:
		s.log.Error("token request failed", "err", err)
	}
	if errors.Is(rfc, fosite.ErrInvalidClient) {
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="mcpd"`)
		}
	}
	s.oauth.WriteAccessError(r.Context(), w, ar, rfc)
}

// retryAfter is the Retry-After of a 503 for want of disk, in seconds.
const retryAfter = "30"

// unavailableError is the OAuth error of a request that needed a write the
// storage cannot make now (RFC 6749 §4.1.2.1 and §5.2 use
// temporarily_unavailable for it; fosite answers it with 503).
func unavailableError() *fosite.RFC6749Error {
	return fosite.ErrTemporarilyUnavailable.WithHint("The server cannot store anything right now (its storage is full or unavailable); try again later.")
}
