package dpop

import "errors"

// Errors a Check can end with. Every refusal of a proof is an *Error that
// wraps one of the first two; the caller answers with its Code and
// Description. ErrReplay is what a ReplayCache returns for a key it holds.
var (
	// ErrInvalidProof: the proof is missing, malformed, not for this
	// request, stale, replayed or not signed by its key
	// (error=invalid_dpop_proof).
	ErrInvalidProof = errors.New("invalid_dpop_proof")
	// ErrUseNonce: nonces are on and the proof carries none, or an old
	// one (error=use_dpop_nonce); answer with a DPoP-Nonce header.
	ErrUseNonce = errors.New("use_dpop_nonce")
	// ErrReplay is returned by a ReplayCache for a key it already holds.
	ErrReplay = errors.New("dpop: proof already used")
)

// Error is a refused proof: Code is the OAuth error code, Description a
// sentence for error_description that never quotes the proof.
type Error struct {
	code        error
	Description string
}

func (e *Error) Error() string { return e.code.Error() + ": " + e.Description }

// Unwrap returns ErrInvalidProof or ErrUseNonce.
func (e *Error) Unwrap() error { return e.code }

// Code is the OAuth error code: invalid_dpop_proof or use_dpop_nonce.
func (e *Error) Code() string { return e.code.Error() }

func invalid(desc string) error { return &Error{code: ErrInvalidProof, Description: desc} }

func useNonce(desc string) error { return &Error{code: ErrUseNonce, Description: desc} }
