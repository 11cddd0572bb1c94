package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/ory/fosite"
)

// Verification outcomes reported to the Observer.
const (
	outcomeValid         = "valid"
	outcomeUnknown       = "unknown"
	outcomeExpired       = "expired"
	outcomeWrongAudience = "wrong_audience"
	outcomeError         = "error"
)

// Verify checks an access token for the MCP endpoint. It has the go-sdk's
// auth.TokenVerifier signature: the caller takes the token from the
// Authorization header. The token must be one this server issued, be
// neither expired nor revoked, and carry the audience ResourceURL().
// Failures wrap auth.ErrInvalidToken.
func (s *Server) Verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	if token == "" {
		s.obs.TokenVerified(outcomeUnknown)
		return nil, fmt.Errorf("%w: empty token", auth.ErrInvalidToken)
	}
	sig := s.strategy.AccessTokenSignature(ctx, token)
	req, err := s.store.GetAccessTokenSession(ctx, sig, &fosite.DefaultSession{})
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) || errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, ErrNotFound) {
			s.obs.TokenVerified(outcomeUnknown)
			return nil, fmt.Errorf("%w: unknown or revoked token", auth.ErrInvalidToken)
		}
		s.obs.TokenVerified(outcomeError)
		return nil, fmt.Errorf("authz: looking up token: %w", err)
	}
	exp := req.GetSession().GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() || !s.now().Before(exp) {
		s.obs.TokenVerified(outcomeExpired)
		return nil, fmt.Errorf("%w: token expired", auth.ErrInvalidToken)
	}
	// The HMAC check after the lookup: the signature already matched a
	// stored token, this proves the token was minted with our key.
	if err := s.strategy.ValidateAccessToken(ctx, req, token); err != nil {
		s.obs.TokenVerified(outcomeUnknown)
		return nil, fmt.Errorf("%w: token rejected", auth.ErrInvalidToken)
	}
	if !slices.Contains(req.GetGrantedAudience(), s.resourceURL) {
		s.obs.TokenVerified(outcomeWrongAudience)
		return nil, fmt.Errorf("%w: token is not for %s", auth.ErrInvalidToken, s.resourceURL)
	}
	clientID := ""
	if c := req.GetClient(); c != nil {
		clientID = c.GetID()
	}
	s.obs.TokenVerified(outcomeValid)
	return &auth.TokenInfo{
		UserID:     req.GetSession().GetSubject(),
		Scopes:     slices.Clone(req.GetGrantedScopes()),
		Expiration: exp,
		Extra:      map[string]any{"client_id": clientID},
	}, nil
}
