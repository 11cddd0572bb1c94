package authz

import (
	"errors"
	"net/http"
)

const (
	msgBadLogin    = "Wrong user name or password."
	msgLoginLocked = "Too many failed sign-in attempts. Wait a few minutes and try again."
)

// handleLogin is the login form's POST. It checks the CSRF token bound to
// the visitor session and the pending request, rate-limits failures per
// user and per client address, and on success starts a fresh session and
// resumes the authorization.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		s.errorPage(w, http.StatusRequestEntityTooLarge, "Request too large", "The form is larger than this server accepts.")
		return
	case http.StatusBadRequest:
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	sess := s.currentSession(r)
	reqID := r.PostForm.Get("request_id")
	if sess == nil || !sess.checkCSRF("login", reqID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Return to your application and connect again.")
		return
	}
	pr, ok := s.pending.get(reqID)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Return to your application and connect again.")
		return
	}
	ctx := r.Context()
	c, err := s.lookupClient(ctx, pr.clientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown application", "This application is no longer registered. Return to it and connect again.")
		return
	}
	user := r.PostForm.Get("username")
	password := r.PostForm.Get("password")
	addr := s.clientAddr(r)
	addrKey := s.limitKey(r)
	// Count the attempt before checking the password and give it back
	// only on success, so parallel guesses cannot all slip past the limit.
	if !s.loginUser.Reserve(user) {
		s.pending.take(reqID)
		s.showLogin(w, sess, pr.form, c, http.StatusTooManyRequests, user, msgLoginLocked)
		return
	}
	if !s.loginAddr.Reserve(addrKey) {
		s.loginUser.Release(user)
		s.pending.take(reqID)
		s.showLogin(w, sess, pr.form, c, http.StatusTooManyRequests, user, msgLoginLocked)
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
		s.pending.take(reqID)
		s.showLogin(w, sess, pr.form, c, http.StatusUnauthorized, user, msgBadLogin)
		return
	}
	s.loginUser.Release(user)
	s.loginAddr.Release(addrKey)
	s.pending.take(reqID)
	s.sessions.delete(sess.id)
	s.setSessionCookie(w, s.sessions.create(user))
	s.log.Info("login", "user", user, "addr", addr)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.issuer+"/authorize?"+pr.form.Encode(), http.StatusSeeOther)
}
