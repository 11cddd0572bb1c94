package authz

import (
	"errors"
	"net/http"
)

const (
	msgBadLogin    = "Wrong user name or password."
	msgLoginLocked = "Too many failed sign-in attempts. Wait a few minutes and try again."
)

// handlePasswordLogin is the password form's POST. It checks the CSRF
// token bound to the browser and the pending authorization (none for the
// account page), rate-limits failures per user and per client address,
// and on success hands over to completeLogin. With password login turned
// off it refuses every attempt.
func (s *Server) handlePasswordLogin(w http.ResponseWriter, r *http.Request) {
	if !s.readPageForm(w, r) {
		return
	}
	sess := s.currentSession(r)
	reqID := r.PostForm.Get("request_id")
	if !s.checkCSRF(sess, "login", reqID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Return to your application and connect again.")
		return
	}
	if s.cfg.DisablePasswordLogin {
		s.errorPage(w, http.StatusForbidden, "Passwords are turned off", "This server does not accept passwords. Sign in another way.")
		return
	}
	ctx := r.Context()
	prompt, ok := s.promptFor(w, r, reqID)
	if !ok {
		return
	}
	user := r.PostForm.Get("username")
	password := r.PostForm.Get("password")
	prompt.username = user
	addr := s.clientAddr(r)
	addrKey := s.limitKey(r)
	// Count the attempt before checking the password and give it back
	// only on success, so parallel guesses cannot all slip past the limit.
	if !s.loginUser.Reserve(user) {
		prompt.message = msgLoginLocked
		s.renderLogin(w, sess, http.StatusTooManyRequests, prompt)
		return
	}
	if !s.loginAddr.Reserve(addrKey) {
		s.loginUser.Release(user)
		prompt.message = msgLoginLocked
		s.renderLogin(w, sess, http.StatusTooManyRequests, prompt)
		return
	}
	if err := s.store.Authenticate(ctx, user, password); err != nil {
		if !errors.Is(err, ErrBadCredentials) {
			s.loginUser.Release(user)
			s.loginAddr.Release(addrKey)
			s.log.Error("login: authenticate failed", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not check the password. Try again.")
			return
		}
		s.log.Info("login failed", "addr", addr)
		prompt.message = msgBadLogin
		s.renderLogin(w, sess, http.StatusUnauthorized, prompt)
		return
	}
	s.loginUser.Release(user)
	s.loginAddr.Release(addrKey)
	s.completeLogin(w, r, user, "password", reqID)
}
