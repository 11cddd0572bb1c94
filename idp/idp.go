package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// Request is what the server keeps of one sign-in between sending the
// person to the provider and the provider's answer. State and Nonce are
// random; CodeVerifier is the PKCE verifier whose S256 challenge goes with
// the authorization request.
type Request struct {
	State        string
	Nonce        string // checked against the ID token's nonce claim (OIDC)
	CodeVerifier string
}

// Identity is a person as a provider vouches for them after a sign-in.
type Identity struct {
	Issuer        string // the provider's issuer (OIDC) or base URL (GitHub)
	Subject       string // the provider's stable id of the person
	Email         string
	EmailVerified bool     // the provider says the person controls Email
	Name          string   // a display name or login, for logs and pages
	Orgs          []string // GitHub organisations (logins), when asked for
}

// The classes of failure a connector reports, wrapped with details.
var (
	// ErrUnavailable: the provider could not be reached, did not answer in
	// time, or answered with a server error. Trying again later may work.
	ErrUnavailable = errors.New("identity provider unavailable")
	// ErrRejected: the provider refused the request, e.g. an authorization
	// code that was used already or a refresh token that was revoked.
	ErrRejected = errors.New("identity provider refused the request")
	// ErrUnverifiable: the provider's answer failed verification: an ID
	// token with a bad signature, of another issuer or audience, expired,
	// or with the wrong nonce.
	ErrUnverifiable = errors.New("identity provider's answer failed verification")
)

// TokenError classifies an error of a token request made with
// golang.org/x/oauth2 (code exchange or refresh). Only a refusal of the
// grant itself is ErrRejected: invalid_grant (RFC 6749 §5.2: the code or
// refresh token is invalid, expired or revoked), and GitHub's own
// bad_verification_code and bad_refresh_token. Everything else is
// ErrUnavailable, and the grant may still be good: no answer, a timeout, a
// 5xx, 429 (throttled), or a refusal of mcpd's client or request
// (invalid_client after a secret was rotated, invalid_request,
// unauthorized_client …), which the operator fixes. A refresh refused as
// ErrRejected makes mcpd forget the user's token, so a throttled or
// misconfigured provider must not look like one. The result names the
// OAuth error code and status, never the response body, which may echo
// what was sent.
func TokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: no answer in time: %w", ErrUnavailable, context.DeadlineExceeded)
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code := re.ErrorCode
	if code == "" || len(code) > 64 || strings.TrimLeft(code, "abcdefghijklmnopqrstuvwxyz_") != "" {
		code = "no error code"
	}
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: token endpoint answered status %d, %s", ErrUnavailable, status, code)
	case code == "invalid_grant" || code == "bad_verification_code" || code == "bad_refresh_token":
		return fmt.Errorf("%w: token endpoint answered status %d, %s", ErrRejected, status, code)
	}
	return fmt.Errorf("%w: token endpoint refused mcpd's client or request: status %d, %s", ErrUnavailable, status, code)
}

// HTTPError classifies a failed call to a provider's API (discovery,
// keys, userinfo, GitHub's user API): always ErrUnavailable, keeping a
// timeout recognisable.
func HTTPError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: no answer in time: %w", ErrUnavailable, what, context.DeadlineExceeded)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}
