package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/web"
)

const (
	idpLoginPrefix = "/login/idp/"
	// idpStateTTL is how long a person has at the provider.
	idpStateTTL = 10 * time.Minute
	// defaultIDPTimeout bounds the provider calls of one sign-in step.
	defaultIDPTimeout = 15 * time.Second
)

// idpState is the server's record of a sign-in started at a provider,
// kept in the store under the state sent to the provider. The nonce and
// the PKCE verifier are not in it: they are derived from the state with a
// server key (upstreamRequest), so the record holds nothing usable.
type idpState struct {
	Provider  string    `json:"provider"`
	Session   string    `json:"session"`              // the binding of the browser session that started it
	RequestID string    `json:"request_id,omitempty"` // the pending authorization to continue to, if any
	Created   time.Time `json:"created"`
}

// idpCallbackURL is where provider name sends the person back.
func (s *Server) idpCallbackURL(name string) string {
	return s.issuer + idpLoginPrefix + url.PathEscape(name) + "/callback"
}

// upstreamRequest derives the nonce and the PKCE verifier of a sign-in
// from its state: 32-byte HMACs, base64url (43 characters, a valid
// verifier).
func (s *Server) upstreamRequest(state string) UpstreamRequest {
	derive := func(label string) string {
		m := hmac.New(sha256.New, s.idpKey)
		m.Write([]byte(label + "\x00" + state))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return UpstreamRequest{State: state, Nonce: derive("nonce"), CodeVerifier: derive("pkce")}
}

// idpLoginLink is provider p's "Sign in with …" button on the login page.
func (s *Server) idpLoginLink(p *IdentityProvider) loginLink {
	base := s.issuer + idpLoginPrefix + url.PathEscape(p.Name)
	return func(requestID string) web.LoginLink {
		href := base
		if requestID != "" {
			href += "?" + url.Values{"request_id": {requestID}}.Encode()
		}
		return web.LoginLink{Label: "Sign in with " + p.DisplayName, Href: href}
	}
}

// handleIDPStart is GET /login/idp/{name}: it records the sign-in, bound
// to the browser session and (with request_id) to the pending
// authorization, and sends the person to the provider. Without request_id
// the sign-in continues to the account page (it also renews the upstream
// token that api_call uses).
func (s *Server) handleIDPStart(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	p, ok := s.idps[name]
	if !ok {
		s.errorPage(w, http.StatusNotFound, "Unknown sign-in provider", "This server has no identity provider of that name.")
		return
	}
	if !s.idpStarts.Allow(s.limitKey(r)) {
		s.errorPage(w, http.StatusTooManyRequests, "Too many sign-ins", "Too many sign-ins were started from your address. Wait a few minutes and try again.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.idpTimeout)
	defer cancel()
	reqID := r.URL.Query().Get("request_id")
	if reqID != "" {
		_, err := s.getPending(ctx, reqID)
		if errors.Is(err, ErrNotFound) {
			s.errorPage(w, http.StatusBadRequest, "Request expired", "This sign-in request has expired. Return to your application and connect again.")
			return
		}
		if err != nil {
			s.log.Error("idp: pending authorization lookup failed", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not start the sign-in. Try again.")
			return
		}
	}
	sess := s.visitor(w, s.currentSession(r))
	state := randomToken(32)
	rec := idpState{Provider: name, Session: sess.binding(), RequestID: reqID, Created: s.now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not start the sign-in. Try again.")
		return
	}
	if err := s.identities.PutIDPState(ctx, state, data, s.now().Add(idpStateTTL)); err != nil {
		s.log.Error("idp: storing the sign-in state failed", "provider", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not start the sign-in. Try again.")
		return
	}
	target, err := p.Connector.AuthCodeURL(ctx, s.idpCallbackURL(name), s.upstreamRequest(state))
	if err != nil {
		s.providerErrorPage(w, p, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleIDPCallback is GET /login/idp/{name}/callback, where the provider
// sends the person back. The state must be one this server issued, not yet
// used, for this provider and this browser session; then the code is
// exchanged, the answer verified, the allow-lists applied, and the
// identity linked to a user (created with create_users) in one
// transaction with the upstream token. It ends at the pending
// authorization (consent) or at the account page, through completeLogin.
func (s *Server) handleIDPCallback(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	p, ok := s.idps[name]
	if !ok {
		s.errorPage(w, http.StatusNotFound, "Unknown sign-in provider", "This server has no identity provider of that name.")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		s.errorPage(w, http.StatusBadRequest, "Sign-in failed", "The answer from "+p.DisplayName+" did not belong to a sign-in started here. Start again from your application.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.idpTimeout)
	defer cancel()
	data, err := s.identities.TakeIDPState(ctx, state)
	if errors.Is(err, ErrNotFound) {
		s.log.Info("idp: unknown, used or expired state", "provider", name, "addr", s.clientAddr(r))
		s.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in has expired or was completed already. Start again from your application.")
		return
	}
	if err != nil {
		s.log.Error("idp: reading the sign-in state failed", "provider", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not finish the sign-in. Try again.")
		return
	}
	var rec idpState
	if err := json.Unmarshal(data, &rec); err != nil || rec.Provider != name {
		s.errorPage(w, http.StatusBadRequest, "Sign-in failed", "The answer from "+p.DisplayName+" did not belong to a sign-in started here. Start again from your application.")
		return
	}
	sess := s.currentSession(r)
	if sess == nil || subtle.ConstantTimeCompare([]byte(sess.binding()), []byte(rec.Session)) != 1 {
		s.log.Info("idp: state of another browser session", "provider", name, "addr", s.clientAddr(r))
		s.errorPage(w, http.StatusForbidden, "Sign-in failed", "This sign-in was started in another browser, or your session here ended meanwhile. Start again from your application.")
		return
	}
	// RFC 9207: an answer naming another issuer is not this provider's
	// (a mix-up attack), error answers included.
	if ok, err := s.responseFromProvider(ctx, p, q); err != nil {
		s.providerErrorPage(w, p, err)
		return
	} else if !ok {
		s.log.Warn("idp: the answer names another issuer, or none although the provider promises one", "provider", name, "addr", s.clientAddr(r))
		s.errorPage(w, http.StatusBadRequest, "Sign-in failed", "The answer did not come from "+p.DisplayName+", so mcpd did not sign you in. Start again from your application.")
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.Info("idp: provider answered an error", "provider", name, "error", oauthErrorCode(e))
		if e == "access_denied" {
			s.errorPage(w, http.StatusForbidden, "Sign-in cancelled", "You did not let "+p.DisplayName+" sign you in to mcpd, so you are not signed in.")
			return
		}
		s.errorPage(w, http.StatusBadGateway, "Sign-in failed", p.DisplayName+" could not sign you in (it answered "+oauthErrorCode(e)+"). Try again, or ask whoever runs this server.")
		return
	}
	code := q.Get("code")
	if code == "" {
		s.errorPage(w, http.StatusBadRequest, "Sign-in failed", "The answer from "+p.DisplayName+" carried no sign-in code. Start again from your application.")
		return
	}
	id, tok, err := p.Connector.Exchange(ctx, s.idpCallbackURL(name), code, s.upstreamRequest(state))
	if err != nil {
		s.providerErrorPage(w, p, err)
		return
	}
	if why := p.allowed(id); why != "" {
		s.log.Info("idp: sign-in refused by the allow-lists", "provider", name, "subject", id.Subject)
		s.errorPage(w, http.StatusForbidden, "Sign-in refused", why)
		return
	}
	user, err := s.linkAccount(ctx, p, id, tok, false)
	if errors.Is(err, errLinkRace) {
		// Another sign-in of the same person (a second tab, a second
		// replica) created the user or linked the identity between this
		// one's reads and writes. Its work is committed: look again.
		user, err = s.linkAccount(ctx, p, id, tok, true)
	}
	var refused refusal
	if errors.As(err, &refused) {
		s.log.Info("idp: no account for the identity", "provider", name, "subject", id.Subject, "reason", string(refused))
		s.errorPage(w, http.StatusForbidden, "Sign-in refused", string(refused))
		return
	}
	if err != nil {
		s.log.Error("idp: linking the account failed", "provider", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not finish the sign-in. Try again.")
		return
	}
	s.completeLogin(w, r, user, "idp:"+name, rec.RequestID)
}

// responseFromProvider reports whether the authorization response q is
// p's by its iss parameter (RFC 9207 §2.4): when present it must be p's
// issuer identifier, compared as a string; when p promises to send it, it
// must be present. A provider without an issuer identifier is not
// checked.
func (s *Server) responseFromProvider(ctx context.Context, p *IdentityProvider, q url.Values) (bool, error) {
	want, required, err := p.Connector.ResponseIssuer(ctx)
	if err != nil || want == "" {
		return err == nil, err
	}
	if !q.Has("iss") {
		return !required, nil
	}
	return q.Get("iss") == want && len(q["iss"]) == 1, nil
}

// refusal is a sign-in refused for a reason the person can act on; its
// text is the page's sentence.
type refusal string

func (r refusal) Error() string { return string(r) }

// errLinkRace is linkAccount finding, at its writes, a user or link that
// its reads did not see: another sign-in committed it meanwhile.
var errLinkRace = errors.New("authz: another sign-in linked the account meanwhile")

// linkAccount finds or creates the user of id and keeps the upstream
// token, all in one transaction: a failure leaves no half-created user.
// A name, email or identity taken between its reads and its writes is
// errLinkRace, to be tried again, unless final: then a taken name is a
// refusal. (A store whose transactions run one at a time, like bbolt's,
// never races; one that isolates less, like PostgreSQL's read committed,
// may.)
func (s *Server) linkAccount(ctx context.Context, p *IdentityProvider, id UpstreamIdentity, tok *oauth2.Token, final bool) (user string, err error) {
	tctx, err := s.store.BeginTX(ctx)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			s.store.Rollback(tctx)
		}
	}()
	email := foldEmail(id.Email)
	linked, err := s.identities.LookupIdentity(tctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		user = linked.User
	case errors.Is(err, ErrNotFound):
		if email == "" || !id.EmailVerified {
			return "", refusal(p.DisplayName + " did not confirm an email address for your account, so mcpd cannot tell which account is yours.")
		}
		user, err = s.identities.LookupUserByEmail(tctx, email)
		switch {
		case errors.Is(err, ErrNotFound) && p.CreateUsers:
			user = email
			if err := s.identities.CreateExternalUser(tctx, user, email); errors.Is(err, ErrAlreadyExists) {
				if !final {
					return "", errLinkRace
				}
				return "", refusal("An mcpd user named " + email + " exists without that email address, so mcpd will not sign you in as it. Ask whoever runs this server to give it the address (mcpd user email " + email + " " + email + "), then sign in again.")
			} else if err != nil {
				return "", err
			}
			s.log.Info("user created at first sign-in", "user", user, "provider", p.Name)
		case errors.Is(err, ErrNotFound):
			return "", refusal("There is no mcpd account for " + email + ". Ask whoever runs this server to add one (mcpd user add NAME --email " + email + "), then sign in again.")
		case err != nil:
			return "", err
		default:
			if why, err := s.secondSubject(tctx, p, id, user, email); err != nil || why != "" {
				if err == nil {
					err = refusal(why)
				}
				return "", err
			}
		}
		err = s.identities.LinkIdentity(tctx, Identity{Issuer: id.Issuer, Subject: id.Subject, Provider: p.Name, User: user, Email: email, CreatedAt: s.now().UTC()})
		if errors.Is(err, ErrAlreadyExists) && !final {
			return "", errLinkRace
		}
		if err != nil {
			return "", err
		}
	default:
		return "", err
	}
	if s.upstreamTokens != nil && tok != nil && tok.AccessToken != "" {
		if err := s.upstreamTokens.SaveUpstreamToken(tctx, user, p.Name, tok); err != nil {
			return "", err
		}
	}
	return user, s.store.Commit(tctx)
}

// secondSubject returns the refusal for linking id, by its address, to
// user when user already has an identity at id's issuer: another subject
// of one provider is another account there (OpenID Connect Core §5.7: only
// iss and sub identify a person), and when its address matches the
// user's, the provider has most likely passed the address on — a departed
// colleague's address given to a newcomer — and linking would hand the
// newcomer the old holder's mcpd account. "" when there is none.
func (s *Server) secondSubject(ctx context.Context, p *IdentityProvider, id UpstreamIdentity, user, email string) (string, error) {
	ids, err := s.identities.ListIdentities(ctx, user)
	if err != nil {
		return "", err
	}
	for _, have := range ids {
		if have.Issuer == id.Issuer && have.Subject != id.Subject {
			s.log.Warn("idp: an address of a user linked to another account of the same provider", "provider", p.Name, "user", user, "subject", id.Subject)
			return "The address " + email + " belongs to an mcpd account that signs in with another " + p.DisplayName + " account, so mcpd will not sign you in to it: the address may have passed from one person to another. " +
				"If both accounts are yours, ask whoever runs this server to remove the old link (mcpd user unlink " + user + " " + p.Name + "), then sign in again.", nil
		}
	}
	return "", nil
}

// providerErrorPage answers a Connector failure with a page saying what
// happened, in words, with a fitting status; the details go to the log.
func (s *Server) providerErrorPage(w http.ResponseWriter, p *IdentityProvider, err error) {
	s.log.Warn("idp: provider step failed", "provider", p.Name, "err", err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.errorPage(w, http.StatusGatewayTimeout, "Sign-in failed", p.DisplayName+" did not answer in time. Try again in a moment.")
	case errors.Is(err, ErrProviderUnavailable):
		s.errorPage(w, http.StatusBadGateway, "Sign-in failed", p.DisplayName+" could not be reached, or refused mcpd's request. Try again in a moment; if it keeps failing, ask whoever runs this server.")
	case errors.Is(err, ErrProviderRejected):
		s.errorPage(w, http.StatusBadRequest, "Sign-in failed", p.DisplayName+" did not accept this sign-in; its code may have been used already. Start again from your application.")
	case errors.Is(err, ErrProviderUnverifiable):
		s.errorPage(w, http.StatusBadGateway, "Sign-in failed", "The answer from "+p.DisplayName+" could not be verified, so mcpd did not sign you in.")
	default:
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "mcpd could not finish the sign-in with "+p.DisplayName+". Try again.")
	}
}

// oauthErrorCode returns an OAuth error code fit to show and log: RFC 6749
// codes are lower-case letters and underscores; anything else is "an
// error".
func oauthErrorCode(code string) string {
	if code == "" || len(code) > 64 || strings.TrimLeft(code, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "an error"
	}
	return code
}
