package authz

import (
	"errors"
	"net/http"

	"github.com/mcpd/mcpd/web"
)

const (
	loginPath   = "/authorize/login"
	accountPath = "/account"
)

// Sign-in is one page with several ways in, each a small piece of its own:
// the password form (login_password.go), passkeys (login_passkey.go), and
// the links of extra methods such as upstream identity providers. Whichever way a person
// proves who they are, the method ends by calling completeLogin, which
// starts the session and continues where sign-in began.
//
// Where sign-in continues is never taken from the request: a login page
// names a pending authorization by its id (request_id), and sign-in goes
// back to ISSUER/authorize with that stored request, or, without one, to
// ISSUER/account. No address a visitor supplies is ever redirected to.

// loginLink makes, for the pending authorization requestID ("" when
// sign-in continues to the account page), the button of a sign-in method
// that the login page offers as a link. A method it leads to ends with
// completeLogin(w, r, user, method, requestID).
type loginLink func(requestID string) web.LoginLink

// loginPrompt is what a login page says about the sign-in it starts.
type loginPrompt struct {
	requestID  string // pending authorization to continue to; "" for the account page
	clientName string // the application asking, for an authorization
	username   string // prefilled after a failed attempt
	message    string // why the page is shown again
	notice     string // what just happened, such as signing out
}

// renderLogin shows the login page, starting a visitor session when the
// browser has none, so its forms carry a CSRF token bound to the browser.
func (s *Server) renderLogin(w http.ResponseWriter, sess *session, status int, p loginPrompt) {
	sess = s.visitor(w, sess)
	data := web.LoginData{
		Action:     s.issuer + loginPath,
		CSRFToken:  s.csrfToken(sess, "login", p.requestID),
		RequestID:  p.requestID,
		ClientName: p.clientName,
		Username:   p.username,
		Error:      p.message,
		Notice:     p.notice,
		Password:   !s.cfg.DisablePasswordLogin,
	}
	if s.passkeys.rp != nil {
		data.Passkey = &web.PasskeyLogin{Action: s.issuer + passkeyLoginPath, BeginURL: s.issuer + passkeyLoginBeginPath}
	} else {
		data.PasskeyOff = s.passkeys.off
	}
	for _, link := range s.loginLinks {
		data.Links = append(data.Links, link(p.requestID))
	}
	s.renderer.Login(w, status, data)
}

// completeLogin signs user in, after a login method proved who they are:
// it ends the browser's previous session, starts a new one with a new
// cookie, and continues where sign-in began: the pending authorization
// requestID, or the account page when requestID is "". method names the
// way in (password, passkey, idp:NAME) for the session and the log.
//
// Every sign-in method ends here, so none of them handles sessions or
// redirects itself.
func (s *Server) completeLogin(w http.ResponseWriter, r *http.Request, user, method, requestID string) {
	ctx := r.Context()
	next := s.issuer + accountPath
	expired := false
	if requestID != "" {
		pr, err := s.takePending(ctx, requestID)
		switch {
		case errors.Is(err, ErrNotFound):
			expired = true
		case err != nil:
			s.log.Error("login: pending authorization lookup failed", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not continue the sign-in. Try again.")
			return
		default:
			next = s.issuer + "/authorize?" + pr.form.Encode()
		}
	}
	if c, err := r.Cookie(s.sessionCookie()); err == nil && validSessionID(c.Value) {
		if err := s.store.DeleteSession(ctx, sessionKey(c.Value)); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("login: ending the previous session failed", "err", err)
		}
	}
	if err := s.startSession(ctx, w, user, method); err != nil {
		s.log.Error("login: starting the session failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not sign you in. Try again.")
		return
	}
	s.log.Info("login", "user", user, "method", method, "addr", s.clientAddr(r))
	if expired {
		s.errorPage(w, http.StatusBadRequest, "Request expired", "You are signed in, but the application's request has expired. Return to it and connect again.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}
