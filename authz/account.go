package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/web"
)

// minPasswordLength is the shortest password the account page sets.
const minPasswordLength = 8

// handleAccount is ISSUER/account: the signed-in user's own page, listing
// the applications that can act for them (with a revoke form each), and
// forms to change the password and to sign out, here or everywhere. Without a session it is
// the login page, from which sign-in comes back here. Its forms post here,
// each with a CSRF token bound to the browser and to the form's action.
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
		s.renderAccount(w, r, sess, http.StatusOK, accountNotice(r.URL.Query().Get("done")), "")
		return
	}
	if !s.readPageForm(w, r) {
		return
	}
	action := r.PostForm.Get("action")
	if !s.checkCSRF(sess, "account", action, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Open your account page again.")
		return
	}
	switch action {
	case "revoke":
		s.revokeApp(w, r, sess)
	case "password":
		s.changePassword(w, r, sess)
	case "passkey-add":
		s.addPasskey(w, r, sess)
	case "passkey-rename":
		s.renamePasskey(w, r, sess)
	case "passkey-remove":
		s.removePasskey(w, r, sess)
	case "signout":
		s.endSession(r.Context(), w, sess)
		s.log.Info("logout", "user", sess.user)
		s.redirectAccount(w, r, "signed-out")
	case "signout-all":
		n, err := s.store.DeleteUserSessions(r.Context(), sess.user, "")
		if err != nil {
			s.log.Error("account: ending the sessions failed", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not sign you out everywhere. Try again.")
			return
		}
		s.visitor(w, nil)
		s.log.Info("logout everywhere", "user", sess.user, "sessions", n)
		s.redirectAccount(w, r, "signed-out-all")
	case "reauth":
		// Sign in again, to do what needs a recent sign-in.
		s.endSession(r.Context(), w, sess)
		s.redirectAccount(w, r, "reauth")
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
	case "signed-out-all":
		return "You are signed out on every browser."
	case "reauth":
		return "Sign in again to add a passkey."
	case "revoked":
		return "The application is disconnected: its tokens no longer work, and it must ask you again."
	case "password":
		return "Your password is changed. Your other browser sessions are signed out."
	case "passkey-added":
		return "The passkey is added. Next time, choose “Sign in with a passkey”."
	case "passkey-renamed":
		return "The passkey is renamed."
	case "passkey-removed":
		return "The passkey is removed: it no longer signs you in."
	}
	return ""
}

// redirectAccount answers a form of the account page with a redirect back
// to it, so reloading does not post the form again.
func (s *Server) redirectAccount(w http.ResponseWriter, r *http.Request, done string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.issuer+accountPath+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, sess *session, status int, notice, errMsg string) {
	ctx := r.Context()
	apps, err := s.connectedApps(ctx, sess.user)
	if err != nil {
		s.log.Error("account: listing connected apps failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not list your connected apps. Try again.")
		return
	}
	form := func(action string) web.Form { return web.Form{CSRFToken: s.csrfToken(sess, "account", action)} }
	data := web.AccountData{
		User:              sess.user,
		Action:            s.issuer + accountPath,
		Notice:            notice,
		Error:             errMsg,
		Apps:              apps,
		Revoke:            form("revoke"),
		SignOut:           form("signout"),
		SignOutEverywhere: form("signout-all"),
	}
	if s.passwordChangeable(ctx, sess.user) {
		f := form("password")
		data.Password = &f
	}
	keys, err := s.store.ListPasskeys(ctx, sess.user)
	if err != nil {
		s.log.Error("account: listing passkeys failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not list your passkeys. Try again.")
		return
	}
	data.Passkeys = web.AccountPasskeys{
		Unavailable: s.passkeys.off,
		Add:         form("passkey-add"),
		BeginURL:    s.issuer + passkeyAddBeginPath,
		Rename:      form("passkey-rename"),
		Remove:      form("passkey-remove"),
		Full:        len(keys) >= maxPasskeysPerUser,
	}
	if !s.recentlySignedIn(sess) {
		f := form("reauth")
		data.Passkeys.SignInAgain = &f
	}
	for _, k := range keys {
		data.Passkeys.List = append(data.Passkeys.List, web.AccountPasskey{
			ID: passkeyID(k.ID), Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, Synced: k.BackupState,
		})
	}
	s.renderer.Account(w, status, data)
}

// passwordChangeable reports whether the account page offers a password
// change: password login is on and the user has a password.
func (s *Server) passwordChangeable(ctx context.Context, user string) bool {
	if s.cfg.DisablePasswordLogin {
		return false
	}
	ok, err := s.store.HasPassword(ctx, user)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("account: password lookup failed", "err", err)
	}
	return ok
}

// connectedApps lists, one row per client, the applications that can act
// for user: those holding a live grant, and those with a remembered
// consent. A client that is no longer registered is left out.
func (s *Server) connectedApps(ctx context.Context, user string) ([]web.AccountApp, error) {
	reqs, err := s.store.ListSubjectGrants(ctx, user, func() fosite.Session { return &fosite.DefaultSession{} })
	if err != nil {
		return nil, err
	}
	consents, err := s.store.ListConsents(ctx, user)
	if err != nil {
		return nil, err
	}
	rows := map[string]*web.AccountApp{}
	var scopes = map[string][]string{}
	row := func(clientID string) *web.AccountApp {
		if rows[clientID] == nil {
			rows[clientID] = &web.AccountApp{ClientID: clientID}
		}
		return rows[clientID]
	}
	earliest := func(a, b time.Time) time.Time {
		if a.IsZero() || (!b.IsZero() && b.Before(a)) {
			return b
		}
		return a
	}
	for _, req := range reqs {
		id := req.GetClient().GetID()
		app := row(id)
		app.AllowedAt = earliest(app.AllowedAt, grantStart(req))
		if t := req.GetRequestedAt(); t.After(app.LastUsedAt) {
			app.LastUsedAt = t
		}
		scopes[id] = append(scopes[id], req.GetGrantedScopes()...)
	}
	for _, c := range consents {
		app := row(c.ClientID)
		app.AllowedAt = earliest(app.AllowedAt, c.CreatedAt)
		app.Remembered = true
		scopes[c.ClientID] = append(scopes[c.ClientID], c.Scopes...)
	}
	out := make([]web.AccountApp, 0, len(rows))
	for id, app := range rows {
		c, err := s.store.LookupClient(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		app.Name = c.Name
		app.Registration = c.Source
		if c.MetadataURL != "" {
			if u, err := url.Parse(c.MetadataURL); err == nil {
				app.MetadataHost = u.Host
			}
		}
		for _, sc := range s.scopeOrder { // the server's order, each once, in plain words
			if slices.Contains(scopes[id], sc) {
				app.Scopes = append(app.Scopes, s.scopes[sc])
			}
		}
		out = append(out, *app)
	}
	slices.SortFunc(out, func(a, b web.AccountApp) int {
		if c := b.LastUsedAt.Compare(a.LastUsedAt); c != 0 {
			return c
		}
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
	return out, nil
}

// grantStart is when the user allowed the grant of req: the grant_start
// its session carries from the authorization, else its request time.
func grantStart(req fosite.Requester) time.Time {
	if sess, ok := req.GetSession().(*fosite.DefaultSession); ok && sess != nil {
		if n, ok := unixSeconds(sess.Extra[grantStartKey]); ok {
			return time.Unix(n, 0)
		}
	}
	return req.GetRequestedAt()
}

// revokeApp is the revoke form of a connected app: in one transaction it
// ends every grant the signed-in user gave the client, with every token of
// them, and forgets the user's remembered consent for it, so the client's
// next call gets 401 and it must ask again. Other users' grants of the same
// client are untouched.
func (s *Server) revokeApp(w http.ResponseWriter, r *http.Request, sess *session) {
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form did not say which application to revoke.")
		return
	}
	ctx := r.Context()
	var grants int
	err := s.inTx(ctx, func(ctx context.Context) error {
		var err error
		if grants, err = s.store.RevokeSubjectClientGrants(ctx, sess.user, clientID); err != nil {
			return err
		}
		if err := s.store.DeleteConsent(ctx, sess.user, clientID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		s.log.Error("account: revoking an application failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not revoke the application. Try again.")
		return
	}
	s.log.Info("application revoked by its user", "user", sess.user, "client_id", clientID, "grants", grants)
	s.redirectAccount(w, r, "revoked")
}

// changePassword is the password form: the current password is checked
// (rate-limited as a sign-in is), the new one set, every other session of
// the user ended, and this browser's session renewed under a new cookie.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	if !s.passwordChangeable(ctx, sess.user) {
		s.errorPage(w, http.StatusForbidden, "No password", "Your account does not sign in with a password here.")
		return
	}
	current, next := r.PostForm.Get("current_password"), r.PostForm.Get("new_password")
	fail := func(status int, msg string) { s.renderAccount(w, r, sess, status, "", msg) }
	switch {
	case next != r.PostForm.Get("new_password_again"):
		fail(http.StatusBadRequest, "The new password and its repetition differ.")
		return
	case len([]rune(next)) < minPasswordLength:
		fail(http.StatusBadRequest, "The new password is too short: use at least 8 characters.")
		return
	}
	if !s.loginUser.Reserve(sess.user) {
		fail(http.StatusTooManyRequests, msgLoginLocked)
		return
	}
	if err := s.store.Authenticate(ctx, sess.user, current); err != nil {
		if !errors.Is(err, ErrBadCredentials) {
			s.loginUser.Release(sess.user)
			s.log.Error("account: authenticate failed", "err", err)
			fail(http.StatusInternalServerError, "mcpd could not check the password. Try again.")
			return
		}
		s.log.Info("password change refused: wrong current password", "user", sess.user)
		fail(http.StatusUnauthorized, "The current password is wrong.")
		return
	}
	s.loginUser.Release(sess.user)
	if err := s.store.SetPassword(ctx, sess.user, next); err != nil {
		s.log.Error("account: setting the password failed", "err", err)
		fail(http.StatusInternalServerError, "mcpd could not change the password. Try again.")
		return
	}
	// Every session ends, this one too, and this browser gets a new one:
	// a copy of its cookie taken before the change is worthless.
	if _, err := s.store.DeleteUserSessions(ctx, sess.user, ""); err != nil {
		s.log.Error("account: ending the sessions failed", "err", err)
	}
	if err := s.startSession(ctx, w, sess.user, sess.method); err != nil {
		s.log.Error("account: starting a new session failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Your password is changed, but mcpd could not keep you signed in. Sign in with the new password.")
		return
	}
	s.log.Info("password changed by its user", "user", sess.user)
	s.redirectAccount(w, r, "password")
}

// inTx runs fn in one store transaction: its writes take effect together
// or not at all.
func (s *Server) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tctx, err := s.store.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := fn(tctx); err != nil {
		if rerr := s.store.Rollback(tctx); rerr != nil {
			s.log.Error("rollback failed", "err", rerr)
		}
		return err
	}
	return s.store.Commit(tctx)
}
