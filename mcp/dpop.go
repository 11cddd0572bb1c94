package mcp

import (
	"context"
	"errors"
)

// ProofChecker checks DPoP proofs (RFC 9449) for the MCP endpoint; the
// authorization server's checker, adapted by cmd/mcpd, so that both spend
// jtis in one replay cache and share nonces.
type ProofChecker interface {
	// CheckProof checks the DPoP header values of a request made with
	// method to one of urls, presenting accessToken, and returns the
	// thumbprint of the proof's key. Its errors wrap ErrInvalidDPoPProof
	// or ErrUseDPoPNonce (the text after the code is a description fit
	// for error_description); any other error is the server's.
	CheckProof(ctx context.Context, proofs []string, method string, urls []string, accessToken string) (jkt string, err error)
	// Algorithms are the JWS algorithms proofs may use.
	Algorithms() []string
	// Nonce is the current server nonce; "" when nonces are off.
	Nonce() string
}

// Errors a ProofChecker wraps.
var (
	ErrInvalidDPoPProof = errors.New("invalid_dpop_proof")
	ErrUseDPoPNonce     = errors.New("use_dpop_nonce")
)

// ExtraJKT is the TokenInfo.Extra key under which the Verifier reports the
// thumbprint of the DPoP key a token is bound to (its cnf.jkt); absent for
// a bearer token.
const ExtraJKT = "jkt"

// Authorization schemes (RFC 6750, RFC 9449 §7.1).
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)
