package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/web"
)

const consentPath = "/authorize/consent"

// handleAuthorize is GET /authorize: it validates the request, then shows
// the login page (no session), skips consent when a remembered decision
// covers the request, or shows the consent page.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		s.errorPage(w, http.StatusRequestURITooLong, "Request too long", "The application's authorization request is too long for mcpd to keep. Return to the application and connect again.")
		return
	}
	form := r.URL.Query()
	ar, rerr := s.parseAuthorize(r.Context(), w, form)
	if ar == nil {
		return
	}
	prompt := strings.Fields(form.Get("prompt"))
	sess := s.currentSession(r)
	if !s.signedIn(r.Context(), sess) {
		if slices.Contains(prompt, "none") {
			s.redirectError(w, ar, fosite.ErrLoginRequired)
			return
		}
		// Even an erroneous request waits for the user to sign in before
		// it is sent back (RFC 9700 §4.11.2): anyone can register a
		// redirect URI, so an error redirect before that would make mcpd
		// an open redirector.
		s.showLogin(w, r, sess, form, ar.GetClient())
		return
	}
	if rerr != nil {
		s.redirectError(w, ar, rerr)
		return
	}
	s.consentOrIssue(w, r, sess, ar, form, prompt)
}

// parseAuthorize validates an authorization request given as form values.
// When the client or its redirect URI cannot be trusted it writes an error
// page and returns a nil request. Any other problem is returned as the
// error, with the request, for the caller to send to the client once the
// user has signed in.
func (s *Server) parseAuthorize(ctx context.Context, w http.ResponseWriter, form url.Values) (fosite.AuthorizeRequester, error) {
	clientID := form.Get("client_id")
	c, err := s.lookupClient(ctx, clientID)
	if err != nil {
		var ce *cimdError
		switch {
		case errors.As(err, &ce):
			s.cimdErrorPage(w, clientID, ce)
		case errors.Is(err, fosite.ErrNotFound) && strings.HasPrefix(clientID, "https://") && !s.cfg.ClientMetadataDocuments:
			s.errorPage(w, http.StatusBadRequest, "Unknown application", "This application identifies itself by a client metadata document ("+clientID+"), and this mcpd does not use them (--client-metadata-documents false). Return to the application and connect again: it should register itself with mcpd instead.")
		case errors.Is(err, fosite.ErrNotFound):
			s.errorPage(w, http.StatusBadRequest, "Unknown application", "This application is not registered with mcpd. Return to it and connect again; it will register itself.")
		default:
			s.log.Error("authorize: client lookup failed", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not look up the application. Try again.")
		}
		return nil, nil
	}
	redirect := form.Get("redirect_uri")
	if redirect == "" && len(c.RedirectURIs) != 1 {
		s.errorPage(w, http.StatusBadRequest, "Missing redirect address", "The application did not say where to send you back.")
		return nil, nil
	}
	if redirect != "" && !matchRedirectURI(redirect, c.RedirectURIs) {
		s.errorPage(w, http.StatusBadRequest, "Unregistered redirect address", "The application asked to send you to an address it did not register, so mcpd will not send you there.")
		return nil, nil
	}

	// Unknown scopes are dropped, never granted; no scope means the
	// client's registered ones. offline_access is kept (offline.go).
	form = cloneValues(form)
	asked := strings.Fields(form.Get("scope"))
	requested := s.knownScopes(asked)
	if len(requested) == 0 {
		requested = s.knownScopes(c.Scopes)
	}
	if slices.Contains(asked, scopeOfflineAccess) {
		requested = append(requested, scopeOfflineAccess)
	}
	form.Set("scope", strings.Join(requested, " "))

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/authorize?"+form.Encode(), nil)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The authorization request could not be read.")
		return nil, nil
	}
	ar, err := s.oauth.NewAuthorizeRequest(withResolvedClient(withPresentedRedirect(ctx, redirect), c), req)
	// fosite wants a state of 8+ characters, as its last check. Real
	// clients often send none; PKCE, always required, protects the flow,
	// so any state (or none) is accepted and echoed as sent.
	if err != nil && errors.Is(err, fosite.ErrInvalidState) {
		err = nil
	}
	if err == nil {
		err = checkPKCE(form)
	}
	if err == nil {
		err = s.checkResources(form)
	}
	if err == nil && s.dpop != nil {
		if jkt := form.Get("dpop_jkt"); jkt != "" && !dpop.ValidJKT(jkt) {
			err = fosite.ErrInvalidRequest.WithHint("dpop_jkt must be the base64url SHA-256 thumbprint of a JWK (RFC 9449 §10).")
		}
	}
	if err != nil {
		if ar == nil || !ar.IsRedirectURIValid() {
			rfc := fosite.ErrorToRFC6749Error(err)
			s.errorPage(w, http.StatusBadRequest, "Invalid request", rfc.GetDescription())
			return nil, nil
		}
		return ar, err
	}
	return ar, nil
}

// checkPKCE requires an S256 code challenge before the user sees a page;
// fosite would only notice when issuing the code.
func checkPKCE(form url.Values) error {
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "":
		return fosite.ErrInvalidRequest.WithHint("PKCE is required: send code_challenge with code_challenge_method S256.")
	case method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Only code_challenge_method S256 is supported.")
	case len(challenge) < 43 || len(challenge) > 128:
		return fosite.ErrInvalidRequest.WithHint("The code_challenge must be 43 to 128 characters long.")
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// redirectAuthorize sends the user agent back to the client with params,
// adding iss (RFC 9207) and the state when the client sent one.
func (s *Server) redirectAuthorize(w http.ResponseWriter, ar fosite.AuthorizeRequester, params url.Values) {
	u := *ar.GetRedirectURI()
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	q.Del("state")
	if st := ar.GetState(); st != "" {
		q.Set("state", st)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	u.Fragment = ""
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Location", u.String())
	w.WriteHeader(http.StatusSeeOther)
}

// redirectError sends an authorization error response to the client.
func (s *Server) redirectError(w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		s.log.Error("authorize failed", "err", err)
	}
	params := url.Values{"error": {rfc.ErrorField}}
	if d := rfc.GetDescription(); d != "" {
		params.Set("error_description", d)
	}
	s.redirectAuthorize(w, ar, params)
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, msg string) {
	s.renderer.Error(w, status, web.ErrorData{Title: title, Message: msg})
}

// cimdOffCommand is how an operator switches client metadata documents off.
const cimdOffCommand = "mcpd serve --client-metadata-documents false\n# or: MCPD_CLIENT_METADATA_DOCUMENTS=false mcpd serve"

// cimdErrorPage explains why the client metadata document at clientID
// cannot be used, and, when mcpd cannot fetch documents, how to run
// without them: clients such as VS Code then register themselves (DCR).
func (s *Server) cimdErrorPage(w http.ResponseWriter, clientID string, ce *cimdError) {
	// 400 whatever went wrong: anyone can send any https client_id, so a
	// failed fetch is no fault of mcpd's and must not count as one.
	d := web.ErrorData{Title: "Application not recognised"}
	switch ce.kind {
	case cimdUnreachable:
		d.Message = "This application identifies itself by a client metadata document at " + clientID + ", and mcpd could not fetch it: " + ce.reason + "."
		d.Hint = "If this mcpd runs without internet access, whoever runs it can switch client metadata documents off. Applications then register themselves with mcpd instead (VS Code does so by itself), and you connect again from the application."
		d.Command = cimdOffCommand
	case cimdInvalid:
		d.Message = "This application identifies itself by a client metadata document at " + clientID + ", which mcpd cannot use: " + ce.reason + "."
		d.Hint = "The application's makers can fix the document. Until then, whoever runs this mcpd can switch client metadata documents off, so that applications register themselves instead."
		d.Command = cimdOffCommand
	default:
		d.Message = "This application's client metadata document cannot be used now: " + ce.reason + "."
	}
	s.renderer.Error(w, http.StatusBadRequest, d)
}

// showLogin keeps the authorization request and shows the login page,
// from which sign-in continues to it.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, sess *session, form url.Values, c fosite.Client) {
	if !s.pendingStarts.Allow(s.limitKey(r)) {
		s.errorPage(w, http.StatusTooManyRequests, "Too many sign-ins", "Too many sign-ins were started from your address. Wait a minute and try again.")
		return
	}
	id, err := s.putPending(r.Context(), form, c.GetID())
	if err != nil {
		s.log.Error("authorize: storing the pending request failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not keep your request. Try again.")
		return
	}
	s.renderLogin(w, sess, http.StatusOK, loginPrompt{requestID: id, clientName: clientName(c)})
}

func clientName(fc fosite.Client) string {
	if c, ok := fc.(*Client); ok && c.Name != "" {
		return c.Name
	}
	return fc.GetID()
}
