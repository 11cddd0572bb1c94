package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

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

// accessTokenPrefix is what fosite's HMACSHAStrategy puts before an access
// token and takes off again before checking its HMAC.
const accessTokenPrefix = "ory_at_"

// ExtraJKT is the TokenInfo.Extra key under which Verify hands over the
// thumbprint of the DPoP key a token is bound to (its cnf.jkt); absent for
// a bearer token. The resource server must then see a proof of that key.
const ExtraJKT = "jkt"

// Verify checks an access token for the MCP endpoint. It has the go-sdk's
// auth.TokenVerifier signature: the caller takes the token from the
// Authorization header. The token must be one this server issued, be
// neither expired nor revoked, and carry the audience ResourceURL().
// Failures wrap auth.ErrInvalidToken.
//
// It reads the token's record with LookupAccessToken rather than fosite's
// GetAccessTokenSession: the checks are the same, without rebuilding the
// request, its session and its client on every MCP request
// (docs/benchmarks.md, "Authentication cost").
func (s *Server) Verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	if token == "" {
		s.obs.TokenVerified(outcomeUnknown)
		return nil, fmt.Errorf("%w: empty token", auth.ErrInvalidToken)
	}
	sig := s.strategy.AccessTokenSignature(ctx, token)
	at, err := s.store.LookupAccessToken(ctx, sig)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, fosite.ErrNotFound) {
			s.obs.TokenVerified(outcomeUnknown)
			return nil, fmt.Errorf("%w: unknown or revoked token", auth.ErrInvalidToken)
		}
		s.obs.TokenVerified(outcomeError)
		return nil, fmt.Errorf("authz: looking up token: %w", err)
	}
	if !at.Active {
		s.obs.TokenVerified(outcomeUnknown)
		return nil, fmt.Errorf("%w: unknown or revoked token", auth.ErrInvalidToken)
	}
	// A zero expiry never happens for tokens this server issues; fosite
	// would read it as requested_at + lifespan, Verify as expired.
	exp := at.ExpiresAt
	if exp.IsZero() || !s.now().Before(exp) {
		s.obs.TokenVerified(outcomeExpired)
		return nil, fmt.Errorf("%w: token expired", auth.ErrInvalidToken)
	}
	// The HMAC check after the lookup: the signature already matched a
	// stored token, this proves the token was minted with our key. It is
	// what the strategy's ValidateAccessToken does after its expiry check,
	// which the one above already made.
	if err := s.strategy.Enigma.Validate(ctx, strings.TrimPrefix(token, accessTokenPrefix)); err != nil {
		s.obs.TokenVerified(outcomeUnknown)
		return nil, fmt.Errorf("%w: token rejected", auth.ErrInvalidToken)
	}
	if !slices.Contains(at.GrantedAudience, s.resourceURL) {
		s.obs.TokenVerified(outcomeWrongAudience)
		return nil, fmt.Errorf("%w: token is not for %s", auth.ErrInvalidToken, s.resourceURL)
	}
	s.obs.TokenVerified(outcomeValid)
	extra := map[string]any{"client_id": at.ClientID}
	if at.JKT != "" {
		extra[ExtraJKT] = at.JKT
	}
	return &auth.TokenInfo{
		UserID: at.Subject,
		// The resource server sees resource scopes only: offline_access
		// is between the client and this server (offline.go).
		Scopes:     withoutOfflineAccess(at.GrantedScopes),
		Expiration: exp,
		Extra:      extra,
	}, nil
}
