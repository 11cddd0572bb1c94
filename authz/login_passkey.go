package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

const (
	passkeyLoginPath      = "/login/passkey"
	passkeyLoginBeginPath = "/login/passkey/begin"

	msgPasskeyUnknown = "This passkey is not registered here: it may have been removed. Sign in another way, and add it again on your account page."
	msgPasskeyBad     = "The passkey could not be verified. Try again, or sign in another way."
	msgPasskeyExpired = "The passkey sign-in took too long or was already used. Try again."
	msgPasskeyCloned  = "This passkey's signature counter went backwards, so it may have been copied: it is refused. Sign in another way and remove it from your account."
)

var (
	errUnknownPasskey      = errors.New("authz: unknown passkey")
	errClonedPasskey       = errors.New("authz: passkey signature counter did not move on")
	errUnreadableAssertion = errors.New("authz: unreadable passkey assertion")
)

// verifyAssertion checks the authenticator's answer (the JSON the page
// script posts) to the ceremony whose server side is session: it must name
// a registered passkey, carry that passkey's signature over the challenge
// for this RP ID and origin with user verification, and a signature counter
// that moved on. It returns the passkey's user and the verified credential.
func (s *Server) verifyAssertion(ctx context.Context, session webauthn.SessionData, credential []byte) (string, *webauthn.Credential, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errUnreadableAssertion, err)
	}
	var stored Passkey
	found := func(rawID, userHandle []byte) (webauthn.User, error) {
		p, err := s.store.GetPasskey(ctx, rawID)
		if errors.Is(err, ErrNotFound) {
			return nil, errUnknownPasskey
		}
		if err != nil {
			return nil, err
		}
		stored = p
		return s.webauthnUser(p.User, []Passkey{p}), nil
	}
	user, cred, err := s.passkeys.rp.ValidatePasskeyLogin(found, session, parsed)
	if err != nil {
		return "", nil, err
	}
	if cred.Authenticator.CloneWarning {
		return user.WebAuthnName(), nil, fmt.Errorf("%w: stored %d, presented %d", errClonedPasskey, stored.SignCount, parsed.Response.AuthenticatorData.Counter)
	}
	return user.WebAuthnName(), cred, nil
}

// handlePasskeyLoginBegin is POST ISSUER/login/passkey/begin, the login
// page script's first step of "Sign in with a passkey": it answers the
// options of a discoverable login (no user name: the authenticator offers
// the passkeys it holds for this server) and keeps the challenge, bound to
// this browser.
func (s *Server) handlePasskeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	if !readScriptForm(w, r) {
		return
	}
	sess := s.currentSession(r)
	if !s.checkCSRF(sess, "login", r.PostForm.Get("request_id"), r.PostForm.Get("csrf_token")) {
		scriptError(w, http.StatusForbidden, "This page has expired. Load it again.")
		return
	}
	if s.passkeys.rp == nil {
		scriptError(w, http.StatusBadRequest, s.passkeys.off)
		return
	}
	if !s.ceremonies.Reserve(s.limitKey(r)) {
		scriptError(w, http.StatusTooManyRequests, "Too many passkey requests from this address. Wait a minute and try again.")
		return
	}
	assertion, sd, err := s.passkeys.rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		s.log.Error("passkey: begin login failed", "err", err)
		scriptError(w, http.StatusInternalServerError, "mcpd could not start. Try again.")
		return
	}
	id, err := s.beginCeremony(r.Context(), ceremony{Purpose: "login", Binding: sess.binding(), Session: *sd})
	if err != nil {
		s.log.Error("passkey: storing the ceremony failed", "err", err)
		scriptError(w, http.StatusInternalServerError, "mcpd could not start. Try again.")
		return
	}
	answerScript(w, http.StatusOK, map[string]any{"ceremony": id, "publicKey": assertion.Response})
}

// handlePasskeyLogin is the passkey form's POST, which the login page
// script submits with the authenticator's assertion: the ceremony is taken
// (so the assertion works once), the signature checked against the stored
// public key, the signature counter must have moved on, and completeLogin
// signs the passkey's user in.
func (s *Server) handlePasskeyLogin(w http.ResponseWriter, r *http.Request) {
	if !s.readPageForm(w, r) {
		return
	}
	ctx := r.Context()
	sess := s.currentSession(r)
	reqID := r.PostForm.Get("request_id")
	if !s.checkCSRF(sess, "login", reqID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Return to your application and connect again.")
		return
	}
	// The ceremony is finished before anything else is looked at, so a
	// replayed form meets a used ceremony whatever became of its request;
	// completeLogin deals with a request that expired meanwhile.
	prompt := s.promptOf(ctx, reqID)
	if s.passkeys.rp == nil {
		prompt.message = s.passkeys.off
		s.renderLogin(w, sess, http.StatusBadRequest, prompt)
		return
	}
	addrKey := s.limitKey(r)
	if !s.loginAddr.Reserve(addrKey) {
		prompt.message = msgLoginLocked
		s.renderLogin(w, sess, http.StatusTooManyRequests, prompt)
		return
	}
	refuse := func(status int, msg string) {
		prompt.message = msg
		s.renderLogin(w, sess, status, prompt)
	}
	c, err := s.finishCeremony(ctx, r.PostForm.Get("ceremony"), sess, "login")
	if err != nil {
		if !errors.Is(err, errCeremony) {
			s.loginAddr.Release(addrKey)
			s.log.Error("passkey: ceremony lookup failed", "err", err)
		}
		refuse(http.StatusBadRequest, msgPasskeyExpired)
		return
	}
	name, cred, err := s.verifyAssertion(ctx, c.Session, []byte(r.PostForm.Get("credential")))
	switch {
	case errors.Is(err, errUnknownPasskey):
		s.log.Info("passkey login failed: unknown passkey", "addr", s.clientAddr(r))
		refuse(http.StatusUnauthorized, msgPasskeyUnknown)
		return
	case errors.Is(err, errClonedPasskey):
		s.log.Warn("passkey login refused", "user", name, "err", err)
		refuse(http.StatusUnauthorized, msgPasskeyCloned)
		return
	case errors.Is(err, errUnreadableAssertion):
		s.log.Info("passkey login failed: unreadable assertion", "addr", s.clientAddr(r), "err", webauthnDetail(err))
		refuse(http.StatusBadRequest, msgPasskeyBad)
		return
	case err != nil:
		s.log.Info("passkey login failed", "addr", s.clientAddr(r), "err", webauthnDetail(err))
		refuse(http.StatusUnauthorized, msgPasskeyBad)
		return
	}
	if ok, err := s.store.UserExists(ctx, name); err != nil || !ok {
		refuse(http.StatusUnauthorized, msgPasskeyUnknown)
		return
	}
	now := s.now()
	err = s.store.UpdatePasskey(ctx, cred.ID, func(p *Passkey) error {
		p.SignCount = max(p.SignCount, cred.Authenticator.SignCount)
		p.UserVerified = p.UserVerified || cred.Flags.UserVerified
		p.BackupState = cred.Flags.BackupState
		p.LastUsedAt = now
		return nil
	})
	if err != nil {
		s.loginAddr.Release(addrKey)
		s.log.Error("passkey: recording the sign-in failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not sign you in. Try again.")
		return
	}
	s.loginAddr.Release(addrKey)
	s.completeLogin(w, r, name, "passkey", reqID)
}

// promptOf is the login prompt of the pending authorization reqID as far
// as it is still known: without the application's name when the request
// or its client is gone.
func (s *Server) promptOf(ctx context.Context, reqID string) loginPrompt {
	prompt := loginPrompt{requestID: reqID}
	if pr, err := s.getPending(ctx, reqID); err == nil {
		if c, err := s.lookupClient(ctx, pr.clientID); err == nil {
			prompt.clientName = clientName(c)
		}
	}
	return prompt
}

// promptFor is the login prompt of the pending authorization reqID ("" for
// the account page). When that request is gone it writes an error page
// and reports false.
func (s *Server) promptFor(w http.ResponseWriter, r *http.Request, reqID string) (loginPrompt, bool) {
	prompt := loginPrompt{requestID: reqID}
	if reqID == "" {
		return prompt, true
	}
	ctx := r.Context()
	pr, err := s.getPending(ctx, reqID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Error("login: pending authorization lookup failed", "err", err)
		}
		s.errorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Return to your application and connect again.")
		return prompt, false
	}
	c, err := s.lookupClient(ctx, pr.clientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown application", "This application is no longer registered. Return to it and connect again.")
		return prompt, false
	}
	prompt.clientName = clientName(c)
	return prompt, true
}
