package mcp

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// tokenInfoKey is the context key under which requireBearer stores the
// verified token.
type tokenInfoKey struct{}

// schemeKey is the context key of the scheme the token came with.
type schemeKey struct{}

// errNoVerifiedToken means a request reached the SDK without passing
// requireBearer; it cannot happen through Server.Handler.
var errNoVerifiedToken = errors.New("mcp: no verified token in context")

// verifiedTokenInfo returns the TokenInfo that requireBearer verified.
func verifiedTokenInfo(ctx context.Context) (*auth.TokenInfo, error) {
	ti, ok := ctx.Value(tokenInfoKey{}).(*auth.TokenInfo)
	if !ok || ti == nil {
		return nil, errNoVerifiedToken
	}
	return ti, nil
}

// requestScheme is the scheme the request's token came with: Bearer or
// DPoP.
func requestScheme(ctx context.Context) string {
	if s, ok := ctx.Value(schemeKey{}).(string); ok {
		return s
	}
	return schemeBearer
}

// credentials extracts the token of an "Authorization: Bearer <token>" or
// "Authorization: DPoP <token>" header; the scheme matches
// case-insensitively and is returned as schemeBearer or schemeDPoP. A
// token anywhere else (a query parameter, a form field) is never looked
// at.
func credentials(r *http.Request) (scheme, token string, ok bool) {
	scheme, token, ok = strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	switch {
	case !ok:
		return "", "", false
	case strings.EqualFold(scheme, schemeBearer):
		scheme = schemeBearer
	case strings.EqualFold(scheme, schemeDPoP):
		scheme = schemeDPoP
	default:
		return "", "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", "", false
	}
	return scheme, token, true
}

// requireBearer answers 401 with a challenge unless the request carries a
// valid token the way it must be presented, and otherwise passes it on
// with the TokenInfo in its context. (CORS preflights never reach it:
// checkOrigin answers them.)
//
// A bearer token comes as "Bearer", refused when DPoP is required. A
// DPoP-bound token comes as "DPoP" with a DPoP proof of its key for this
// request (RFC 9449 §7.1): htm the request's method, htu the endpoint's
// URL, ath the token's hash. Either kind sent the other way is refused
// (§7.2): a stolen bound token is worth nothing as a bearer token.
func (s *Server) requireBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 1 {
			// Which one would count is up to whoever reads the request
			// next; RFC 6750 §3.1 calls this invalid_request.
			s.badRequest(w, "more than one Authorization header")
			return
		}
		scheme, token, ok := credentials(r)
		if !ok || (scheme == schemeDPoP && s.cfg.DPoP == nil) {
			s.unauthorized(w, "", "", "bearer token required")
			return
		}
		if scheme == schemeBearer && s.cfg.RequireDPoP {
			s.unauthorized(w, schemeBearer, "invalid_token", "this resource accepts DPoP-bound tokens only")
			return
		}
		ti, err := s.cfg.Verifier(r.Context(), token, r)
		switch {
		case errors.Is(err, auth.ErrInvalidToken):
			// The verifier's error is not logged: it could quote the token.
			s.log.DebugContext(r.Context(), "bearer token rejected", "remote", r.RemoteAddr)
			s.unauthorized(w, scheme, "invalid_token", "the access token is invalid, expired, revoked or not meant for this resource")
			return
		case errors.Is(err, ErrUnavailable):
			// The store logs why, once a minute.
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, "the server cannot check tokens right now; try again later", http.StatusServiceUnavailable)
			return
		case err != nil:
			s.log.ErrorContext(r.Context(), "verifying bearer token", "err", err)
			http.Error(w, "token verification failed", http.StatusInternalServerError)
			return
		case ti == nil:
			s.log.ErrorContext(r.Context(), "verifier returned no token info")
			http.Error(w, "token verification failed", http.StatusInternalServerError)
			return
		case !ti.Expiration.IsZero() && !s.now().Before(ti.Expiration):
			s.unauthorized(w, scheme, "invalid_token", "the access token has expired")
			return
		}
		bound, _ := ti.Extra[ExtraJKT].(string)
		if scheme == schemeBearer && bound != "" {
			s.unauthorized(w, scheme, "invalid_token", "the access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof")
			return
		}
		if scheme == schemeDPoP {
			if bound == "" {
				s.unauthorized(w, scheme, "invalid_token", "the access token is not DPoP-bound: present it as a Bearer token")
				return
			}
			if !s.checkProof(w, r, token, bound) {
				return
			}
			// The SDK's session binding below reads a Bearer header;
			// the token is verified, so hand it over that way.
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", schemeBearer+" "+token)
		}
		ctx := context.WithValue(r.Context(), tokenInfoKey{}, ti)
		ctx = context.WithValue(ctx, schemeKey{}, scheme)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// retryAfter is the Retry-After, in seconds, of a 503 for a storage that
// cannot answer now.
const retryAfter = "30"

// checkProof checks the DPoP proof of a request presenting token, bound
// to the key bound, and answers 401 (false) when it does not hold.
func (s *Server) checkProof(w http.ResponseWriter, r *http.Request, token, bound string) bool {
	urls := s.proofURLs
	if s.origins.sameEndpoint(r.Host) {
		// The same endpoint under another name: the host changes, the
		// path (an issuer behind a proxy may have one) does not.
		if alias := s.issuerScheme + "://" + r.Host + s.issuerPath + Path; alias != s.resource {
			urls = []string{s.resource, alias}
		}
	}
	jkt, err := s.cfg.DPoP.CheckProof(r.Context(), r.Header.Values("DPoP"), r.Method, urls, token)
	switch {
	case errors.Is(err, ErrUseDPoPNonce):
		s.unauthorized(w, schemeDPoP, "use_dpop_nonce", proofErrorDescription(err, ErrUseDPoPNonce))
		return false
	case errors.Is(err, ErrInvalidDPoPProof):
		s.unauthorized(w, schemeDPoP, "invalid_dpop_proof", proofErrorDescription(err, ErrInvalidDPoPProof))
		return false
	case err != nil:
		s.log.ErrorContext(r.Context(), "checking DPoP proof", "err", err)
		http.Error(w, "DPoP proof check failed", http.StatusInternalServerError)
		return false
	case jkt != bound:
		s.unauthorized(w, schemeDPoP, "invalid_token", "the DPoP proof is signed by another key than the access token is bound to")
		return false
	}
	if n := s.cfg.DPoP.Nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
	}
	return true
}

// proofErrorDescription is the description a ProofChecker put after the
// error code.
func proofErrorDescription(err, code error) string {
	d, ok := strings.CutPrefix(err.Error(), code.Error()+": ")
	if !ok || d == "" {
		return "the DPoP proof is invalid"
	}
	return d
}

// withFixedToken stands in for requireBearer when authentication is
// switched off: every request carries ti.
func withFixedToken(next http.Handler, ti *auth.TokenInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti)))
	})
}
