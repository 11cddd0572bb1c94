package authz

import (
	"net/http"

	"github.com/mcpd/mcpd/web"
)

// handleAccount is ISSUER/account: the signed-in user's own page. Without
// a session it is the login page, from which sign-in comes back here. Its
// forms post here, each with a CSRF token bound to the browser and to the
// form's action.
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	sess := s.currentSession(r)
	if !s.signedIn(r.Context(), sess) {
		if r.Method == http.MethodPost {
			s.errorPage(w, http.StatusForbidden, "Signed out", "You are not signed in any more. Open your account page again and sign in.")
			return
		}
		s.renderLogin(w, sess, http.StatusOK, loginPrompt{notice: accountNotice(r.URL.Query().Get("done"))})
		return
	}
	if r.Method == http.MethodGet {
		s.renderAccount(w, sess, http.StatusOK, accountNotice(r.URL.Query().Get("done")), "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	action := r.PostForm.Get("action")
	if !s.checkCSRF(sess, "account", action, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Open your account page again.")
		return
	}
	switch action {
	case "signout":
		s.endSession(r.Context(), w, sess)
		s.log.Info("logout", "user", sess.user)
		s.redirectAccount(w, r, "signed-out")
	default:
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form asked for something the account page does not do.")
	}
}

// accountNotice is the message the account page shows after a form
// redirected back to it, by the done parameter: fixed texts, so the
// parameter can say nothing of its own.
func accountNotice(done string) string {
	switch done {
	case "signed-out":
		return "You are signed out."
	}
	return ""
}

// redirectAccount answers a form of the account page with a redirect back
// to it, so reloading does not post the form again.
func (s *Server) redirectAccount(w http.ResponseWriter, r *http.Request, done string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.issuer+accountPath+"?done="+done, http.StatusSeeOther)
}

func (s *Server) renderAccount(w http.ResponseWriter, sess *session, status int, notice, errMsg string) {
	form := func(action string) web.Form { return web.Form{CSRFToken: s.csrfToken(sess, "account", action)} }
	s.renderer.Account(w, status, web.AccountData{
		User:    sess.user,
		Action:  s.issuer + accountPath,
		Notice:  notice,
		Error:   errMsg,
		SignOut: form("signout"),
	})
}
