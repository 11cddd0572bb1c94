package authz

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/dpop"
)

// Session Extra keys of DPoP (RFC 9449). A token's binding is the cnf
// claim (RFC 7800) with its jkt member, which the store reads into
// AccessTokenInfo.JKT; an authorization code's is the dpop_jkt the client
// sent to /authorize (§10), dropped once the code is exchanged.
const (
	cnfKey     = "cnf"
	dpopJKTKey = "dpop_jkt"
)

// tokenTypeDPoP is the token_type of a DPoP-bound access token (§5).
const tokenTypeDPoP = "DPoP"

// errInvalidDPoPProof and errUseDPoPNonce are the token endpoint's DPoP
// errors (RFC 9449 §5, §8): 400 with a JSON body, like every token error.
var (
	errInvalidDPoPProof = &fosite.RFC6749Error{
		ErrorField:       dpop.ErrInvalidProof.Error(),
		DescriptionField: "The DPoP proof is missing or invalid.",
		CodeField:        http.StatusBadRequest,
	}
	errUseDPoPNonce = &fosite.RFC6749Error{
		ErrorField:       dpop.ErrUseNonce.Error(),
		DescriptionField: "The authorization server requires a nonce in the DPoP proof; use the one in the DPoP-Nonce header.",
		CodeField:        http.StatusBadRequest,
	}
)

// tokenProof checks the DPoP proof of a token request, all but its jti:
// the zero Proof (JKT "") when the request carries no DPoP header or the
// server does not do DPoP. Whether a proof was required is decided later,
// by bindDPoP, once the client and the grant are known; the jti is spent
// by spendProof in the transaction that issues the tokens, so its record
// is as durable as they are (a crash right after the answer cannot lose
// it) and a request that gets nothing, e.g. one with a made-up client or
// code, writes nothing.
func (s *Server) tokenProof(r *http.Request) (dpop.Proof, error) {
	headers := r.Header.Values("DPoP")
	if s.dpop == nil || len(headers) == 0 {
		return dpop.Proof{}, nil
	}
	p, err := s.dpop.Verify(r.Context(), headers, dpop.Request{Method: r.Method, URLs: []string{s.issuer + "/token"}})
	if err != nil {
		return dpop.Proof{}, dpopTokenError(err)
	}
	return p, nil
}

// spendProof records the jti of a token request's proof (none: nothing to
// do) through ctx, which carries the transaction that issues the tokens,
// or on its own when nothing else is written; a proof spent before fails
// the request with invalid_dpop_proof.
func (s *Server) spendProof(ctx context.Context, p dpop.Proof) error {
	if p.JKT == "" {
		return nil
	}
	err := s.store.RememberProofJTI(ctx, p.ReplayKey, p.Expires)
	switch {
	case errors.Is(err, ErrAlreadyExists):
		return errInvalidDPoPProof.WithHint("The DPoP proof was used before (jti).")
	case err != nil:
		return fosite.ErrServerError.WithWrap(err)
	}
	return nil
}

// dpopTokenError maps a Checker error onto the token endpoint's answer.
func dpopTokenError(err error) error {
	var de *dpop.Error
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return errUseDPoPNonce
	case errors.As(err, &de):
		return errInvalidDPoPProof.WithHint(de.Description)
	}
	return fosite.ErrServerError.WithWrap(err)
}

// setNonceHeader sends the current nonce on every token endpoint answer
// when nonces are on, so a client learns a rotated one before it needs it
// (RFC 9449 §8.2).
func (s *Server) setNonceHeader(w http.ResponseWriter) {
	if s.dpop != nil && s.dpop.NoncesRequired() {
		w.Header().Set("DPoP-Nonce", s.dpop.Nonce())
	}
}

// requiresDPoP reports whether every token request of c must carry a
// proof: --require-dpop, or the client registered
// dpop_bound_access_tokens (RFC 9449 §5.2).
func (s *Server) requiresDPoP(c fosite.Client) bool {
	if s.cfg.RequireDPoP {
		return true
	}
	cl, ok := c.(*Client)
	return ok && cl.DPoPBoundAccessTokens
}

// bindDPoP decides the binding of the tokens a validated request is about
// to get, from the proof's key jkt ("" without a proof), and records it in
// the session: the tokens are bound to jkt, or are bearer tokens. It
// refuses a request without a proof when one is required, an authorization
// code bound by dpop_jkt exchanged with another key, and a refresh of a
// DPoP-bound grant without a proof or, for a public client, with another
// key (RFC 9449 §5: its refresh token is bound to the key too; a
// confidential client authenticates, so its new tokens may move to a new
// key).
func (s *Server) bindDPoP(ar fosite.AccessRequester, jkt string) error {
	ds, ok := ar.GetSession().(*fosite.DefaultSession)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	// The session came out of the store with the code or refresh token; a
	// store that keeps objects rather than copies (fosite's memory store)
	// would otherwise see the code lose its dpop_jkt below.
	ds, ok = ds.Clone().(*fosite.DefaultSession)
	if !ok {
		return fosite.ErrServerError.WithHint("Unexpected session type.")
	}
	ar.SetSession(ds)
	if ds.Extra == nil {
		ds.Extra = map[string]interface{}{}
	}
	grant := ar.GetGrantTypes()
	switch {
	case grant.ExactOne("authorization_code"):
		if want, _ := ds.Extra[dpopJKTKey].(string); want != "" && want != jkt {
			return errInvalidDPoPProof.WithHint("The authorization code is bound to another DPoP key (dpop_jkt).")
		}
	case grant.ExactOne("refresh_token"):
		if err := checkRefreshBinding(sessionJKT(ds), jkt, ar.GetClient().IsPublic()); err != nil {
			return err
		}
	}
	if jkt == "" && s.requiresDPoP(ar.GetClient()) {
		return errInvalidDPoPProof.WithHint("This client must send a DPoP proof with every token request.")
	}
	delete(ds.Extra, dpopJKTKey)
	if jkt == "" {
		delete(ds.Extra, cnfKey)
	} else {
		ds.Extra[cnfKey] = map[string]interface{}{"jkt": jkt}
	}
	return nil
}

// checkRefreshBinding is the rule for refreshing a grant bound to bound
// ("" for a bearer grant) with a proof of jkt.
func checkRefreshBinding(bound, jkt string, public bool) error {
	switch {
	case bound == "":
		return nil
	case jkt == "":
		return errInvalidDPoPProof.WithHint("The refresh token is bound to a DPoP key; send a DPoP proof.")
	case public && jkt != bound:
		return errInvalidDPoPProof.WithHint("The refresh token is bound to another DPoP key.")
	}
	return nil
}

// preCheckRefresh applies checkRefreshBinding before fosite sees the
// refresh token: fosite revokes a whole grant when a rotated token is used
// again, and a thief holding a bound token but not its key must not be
// able to do even that.
//
// active reports whether the token was found and not yet rotated or
// revoked: with the token's lock held, such a token has no successor yet.
func (s *Server) preCheckRefresh(ctx context.Context, sig, jkt string) (active bool, err error) {
	req, err := s.store.GetRefreshTokenSession(ctx, sig, &fosite.DefaultSession{})
	if req == nil || (err != nil && !errors.Is(err, fosite.ErrInactiveToken)) {
		// Unknown or unreadable: fosite gives the proper answer.
		return false, nil
	}
	ds, _ := req.GetSession().(*fosite.DefaultSession)
	return err == nil, checkRefreshBinding(sessionJKT(ds), jkt, req.GetClient().IsPublic())
}

// preCheckCode refuses, before fosite sees it, an authorization code bound
// by dpop_jkt that comes without a proof of that key: fosite revokes every
// token a code was exchanged for when the code comes again, and someone
// holding a used code but not the key must not be able to do that either.
// bindDPoP makes the same check for a code not used yet.
func (s *Server) preCheckCode(ctx context.Context, sig, jkt string) error {
	req, err := s.store.GetAuthorizeCodeSession(ctx, sig, &fosite.DefaultSession{})
	if req == nil || (err != nil && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode)) {
		return nil // unknown or unreadable: fosite gives the proper answer
	}
	ds, _ := req.GetSession().(*fosite.DefaultSession)
	if ds == nil {
		return nil
	}
	if want, _ := ds.Extra[dpopJKTKey].(string); want != "" && want != jkt {
		return errInvalidDPoPProof.WithHint("The authorization code is bound to another DPoP key (dpop_jkt).")
	}
	return nil
}

// sessionJKT returns the cnf.jkt of a session; "" for a bearer grant.
func sessionJKT(ds *fosite.DefaultSession) string {
	if ds == nil {
		return ""
	}
	switch cnf := ds.Extra[cnfKey].(type) {
	case map[string]interface{}:
		jkt, _ := cnf["jkt"].(string)
		return jkt
	case map[string]string:
		return cnf["jkt"]
	}
	return ""
}
