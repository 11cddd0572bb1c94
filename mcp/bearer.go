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

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme matches case-insensitively. A token anywhere else (a
// query parameter, a form field) is never looked at.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// requireBearer answers 401 with a challenge unless the request carries a
// valid bearer token, and otherwise passes it on with the TokenInfo in its
// context. (CORS preflights never reach it: checkOrigin answers them.)
func (s *Server) requireBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			s.unauthorized(w, "", "bearer token required")
			return
		}
		ti, err := s.cfg.Verifier(r.Context(), token, r)
		switch {
		case errors.Is(err, auth.ErrInvalidToken):
			// The verifier's error is not logged: it could quote the token.
			s.log.DebugContext(r.Context(), "bearer token rejected", "remote", r.RemoteAddr)
			s.unauthorized(w, "invalid_token", "the access token is invalid, expired, revoked or not meant for this resource")
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
			s.unauthorized(w, "invalid_token", "the access token has expired")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti)))
	})
}

// withFixedToken stands in for requireBearer when authentication is
// switched off: every request carries ti.
func withFixedToken(next http.Handler, ti *auth.TokenInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti)))
	})
}
