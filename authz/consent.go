package authz

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/web"
)

// consentOrIssue issues a code at once when a remembered consent covers
// the request (unless prompt=consent), and shows the consent page
// otherwise (or answers consent_required to prompt=none).
func (s *Server) consentOrIssue(w http.ResponseWriter, r *http.Request, sess *session, ar fosite.AuthorizeRequester, form url.Values, prompt []string) {
	ctx := r.Context()
	requested := []string(ar.GetRequestedScopes())
	// offline_access needs no consent of its own: it gives nothing every
	// authorization-code client does not get (offline.go).
	resource := withoutOfflineAccess(requested)
	host := redirectHost(ar.GetRedirectURI())
	clientID := ar.GetClient().GetID()
	prev, err := s.store.GetConsent(ctx, sess.user, clientID)
	switch {
	case err == nil && s.now().Before(prev.ExpiresAt) && prev.RedirectHost == host && subset(resource, prev.Scopes) && !slices.Contains(prompt, "consent"):
		s.issueCode(w, r, ar, sess.user, requested)
		return
	case err != nil && !errors.Is(err, ErrNotFound):
		s.log.Error("consent lookup failed", "err", err)
	}
	if slices.Contains(prompt, "none") {
		s.redirectError(w, ar, fosite.ErrConsentRequired)
		return
	}

	id, err := s.putPending(ctx, form, clientID)
	if err != nil {
		s.log.Error("consent: storing the pending request failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not keep your request. Try again.")
		return
	}
	choices := make([]web.ScopeChoice, 0, len(resource))
	for _, sc := range resource {
		choices = append(choices, web.ScopeChoice{Name: sc, Description: s.scopes[sc], Checked: true})
	}
	data := web.ConsentData{
		Action:       s.issuer + consentPath,
		CSRFToken:    s.csrfToken(sess, "consent", id),
		RequestID:    id,
		User:         sess.user,
		ClientName:   clientName(ar.GetClient()),
		ClientID:     clientID,
		RedirectHost: host,
		Scopes:       choices,
		RememberDays: int(s.cfg.ConsentLifetime / (24 * time.Hour)),
	}
	if len(resource) < len(requested) {
		data.OfflineAccessDays = max(1, int(s.cfg.RefreshTokenMaxLifespan/(24*time.Hour)))
	}
	if c, ok := ar.GetClient().(*Client); ok {
		data.ClientSource = c.Source
		if c.MetadataURL != "" {
			if u, err := url.Parse(c.MetadataURL); err == nil {
				// Fetched over https from there, so that origin vouches
				// for the name.
				data.ClientOrigin = u.Scheme + "://" + u.Host
			}
		}
	}
	if u := ar.GetRedirectURI(); u != nil && u.Scheme == "http" {
		data.RedirectLoopback = isLoopbackHost(u.Hostname())
	}
	s.renderer.Consent(w, data)
}

// handleConsent is the consent form's POST: Allow issues a code for the
// checked scopes (only requested, known ones), Deny answers access_denied.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if !s.readPageForm(w, r) {
		return
	}
	sess := s.currentSession(r)
	reqID := r.PostForm.Get("request_id")
	if !s.checkCSRF(sess, "consent", reqID, r.PostForm.Get("csrf_token")) || !s.signedIn(r.Context(), sess) {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This form has expired or did not come from mcpd. Return to your application and connect again.")
		return
	}
	action := r.PostForm.Get("action")
	if action != "allow" && action != "deny" {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "Choose Allow or Deny.")
		return
	}
	ctx := r.Context()
	pr, err := s.takePending(ctx, reqID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Error("consent: pending request lookup failed", "err", err)
		}
		s.errorPage(w, http.StatusBadRequest, "Request expired", "This authorization request has expired. Return to your application and connect again.")
		return
	}
	ar, rerr := s.parseAuthorize(ctx, w, pr.form)
	if ar == nil {
		return
	}
	if rerr != nil {
		s.redirectError(w, ar, rerr)
		return
	}
	if action == "deny" {
		s.log.Info("consent denied", "user", sess.user, "client_id", ar.GetClient().GetID())
		s.redirectError(w, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	var granted []string
	for _, sc := range ar.GetRequestedScopes() {
		if sc == scopeOfflineAccess || slices.Contains(r.PostForm["scope"], sc) {
			granted = append(granted, sc)
		}
	}
	if r.PostForm.Get("remember") != "" {
		now := s.now()
		err := s.store.PutConsent(ctx, Consent{
			User:         sess.user,
			ClientID:     ar.GetClient().GetID(),
			Scopes:       withoutOfflineAccess(granted),
			RedirectHost: redirectHost(ar.GetRedirectURI()),
			CreatedAt:    now,
			ExpiresAt:    now.Add(s.cfg.ConsentLifetime),
		})
		if err != nil && !errors.Is(err, ErrUnavailable) { // the storage logs a full disk
			s.log.Error("storing consent failed", "err", err)
		}
	}
	s.issueCode(w, r, ar, sess.user, granted)
}

// issueCode grants scopes and the MCP audience and redirects with a code.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, user string, scopes []string) {
	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
	ar.GrantAudience(s.resourceURL)
	sess := s.newTokenSession(user)
	if jkt := ar.GetRequestForm().Get("dpop_jkt"); jkt != "" && s.dpop != nil {
		// RFC 9449 §10: the code may only be exchanged with a proof of
		// this key (bindDPoP).
		sess.Extra[dpopJKTKey] = jkt
	}
	resp, err := s.oauth.NewAuthorizeResponse(r.Context(), ar, sess)
	if err != nil {
		s.redirectError(w, ar, err)
		return
	}
	s.log.Info("authorization granted", "user", user, "client_id", ar.GetClient().GetID(), "scopes", scopes)
	s.redirectAuthorize(w, ar, resp.GetParameters())
}

func redirectHost(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.Host != "" {
		return u.Hostname()
	}
	return u.Scheme + ":"
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
