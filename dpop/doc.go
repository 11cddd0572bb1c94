// Package dpop checks DPoP proofs (RFC 9449): the signed JWTs a client
// sends in the DPoP header to show it holds the private key a token is
// bound to. Both of mcpd's endpoints use one Checker: the authorization
// server at /token, to bind the tokens it issues to the proof's key, and
// the resource server at /mcp, to accept a bound token only with a fresh
// proof of that key.
//
// A Checker parses and verifies a proof with go-jose (no JWS code of its
// own): one compact JWS, typ dpop+jwt, an asymmetric algorithm of the
// configured list (never none, never HMAC), a public key in the jwk header
// that verifies the signature, htm and htu matching the request (htu
// compared without query and fragment, scheme and host case-insensitively,
// default ports dropped), iat inside a small window, ath equal to the hash
// of the access token when one is presented, a server nonce when nonces are
// on, and a jti not seen before. The jti is remembered through a
// ReplayCache for as long as the proof could be accepted (Check), or by
// the caller (Verify, then Spend or a record of Proof.ReplayKey of its
// own, such as one in the transaction that issues tokens). The result is
// the key's RFC 7638 SHA-256 thumbprint, the value of a token's cnf.jkt.
//
// The package imports nothing of mcpd. It owns the proof rules and the
// server nonces (Nonces); it does not know where tokens are stored, which
// HTTP status an error maps to, or how a challenge is written: its errors
// say only whether the answer is invalid_dpop_proof or use_dpop_nonce.
//
//	c, err := dpop.New(dpop.Config{Replay: cache})
//	if err != nil { … }
//	proof, err := c.Check(ctx, r.Header.Values("DPoP"), dpop.Request{
//		Method: r.Method, URLs: []string{issuer + "/token"},
//	})
//	switch {
//	case errors.Is(err, dpop.ErrUseNonce): // answer use_dpop_nonce with c.Nonce()
//	case err != nil: // answer invalid_dpop_proof
//	default: // bind the token to proof.JKT
//	}
package dpop
