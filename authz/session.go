package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// sessionCookie names the login cookie. Over https it carries the
// __Host- prefix, which browsers accept only Secure, host-only (no
// Domain) and on path /: no other host, not even a sibling subdomain of
// the same site, can set or replace it, so nobody can plant their own
// session (signed in as them, with their remembered consents) in a
// victim's browser. Under an issuer path (https://host/mcpd) the name
// carries a tag of the path, so two mcpd under one host keep a session
// each.
func (s *Server) sessionCookie() string {
	switch {
	case !isHTTPS(s.issuer):
		return "mcpd_session"
	case s.issuerPath != "":
		return "__Host-mcpd_session-" + pathTag(s.issuerPath)
	}
	return "__Host-mcpd_session"
}

// pathTag is a short tag of an issuer path for the cookie's name.
func pathTag(path string) string {
	h := sha256.Sum256([]byte(path))
	return hex.EncodeToString(h[:4])
}

// sessionCookiePath is / over https, as __Host- requires. Over plain http
// (no prefix to protect it anyway) an issuer path scopes the cookie, so two
// mcpd under one host keep a session each.
func (s *Server) sessionCookiePath() string {
	if s.issuerPath != "" && !isHTTPS(s.issuer) {
		return s.issuerPath
	}
	return "/"
}

// maxSessions caps the signed-in sessions the store keeps; at the cap the
// least recently seen ones end.
const maxSessions = 10000

// sessionIDBytes is the entropy of a session cookie.
const sessionIDBytes = 32

// A session is what a browser's session cookie stands for. Before sign-in
// it is a visitor, known only by the random cookie value, which nothing
// stores: CSRF tokens are bound to it, so a login form can be checked
// without a write per page view. Signing in replaces the cookie with a new
// random value whose hash keys a LoginSession in the store, so every
// process serving the issuer sees it and a copy of the store holds no
// usable cookie.
type session struct {
	id         string // the cookie value: secret, never stored or logged
	user       string // "" for a visitor
	method     string
	signedInAt time.Time
	lastSeen   time.Time
}

// key is what the store keeps the session under: the SHA-256 of its
// cookie value.
func (ss *session) key() string { return sessionKey(ss.id) }

func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// binding identifies the browser for records kept between two of its
// requests (a WebAuthn ceremony, an identity provider's state): it is
// derived from the cookie, so such a record names no usable cookie, and a
// request from another browser does not match it.
func (ss *session) binding() string { return sessionKey("binding\x00" + ss.id) }

// csrfToken binds a form to this browser's cookie, the purpose and what
// the form acts on (a pending authorization, an account action).
func (s *Server) csrfToken(ss *session, purpose, bind string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(ss.id + "\x00" + purpose + "\x00" + bind))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) checkCSRF(ss *session, purpose, bind, token string) bool {
	if ss == nil || token == "" {
		return false
	}
	want := s.csrfToken(ss, purpose, bind)
	return subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

// ownPagesOnly refuses, with 403, a POST that the browser says comes from
// a page of another origin (Sec-Fetch-Site same-site or cross-site): every
// form and script of mcpd posts from mcpd's own pages. The CSRF token
// alone does not do: cookies do not tell ports apart and SameSite=Lax lets
// same-site pages post with them, so on http://localhost a page served
// from any other port of localhost, or under a shared domain a sibling
// subdomain, can plant a cookie whose CSRF token it knows (a visitor
// cookie it fetched itself) and post a form with it, such as a sign-in to
// the attacker's account. A request without the header (no browser, or an
// old one) is left to the CSRF token.
func (s *Server) ownPagesOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch r.Header.Get("Sec-Fetch-Site") {
			case "", "same-origin", "none":
			default:
				s.errorPage(w, http.StatusForbidden, "Form refused", "This form was sent from a page that is not mcpd's, so it was refused. Open the page on mcpd itself and try again.")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// validSessionID reports whether v looks like a cookie this server set.
func validSessionID(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == sessionIDBytes
}

// currentSession returns the request's session: a signed-in one when its
// cookie names a live session in the store (touched now and then), a
// visitor otherwise, and nil when the request carries no session cookie.
func (s *Server) currentSession(r *http.Request) *session {
	c, err := r.Cookie(s.sessionCookie())
	if err != nil || !validSessionID(c.Value) {
		return nil
	}
	ss := &session{id: c.Value}
	ctx := r.Context()
	stored, err := s.store.GetSession(ctx, ss.key())
	switch {
	case errors.Is(err, ErrNotFound):
		return ss
	case err != nil:
		s.log.Error("session: lookup failed", "err", err)
		return ss
	}
	if !s.now().Before(stored.CreatedAt.Add(s.cfg.SessionMaxAge)) {
		// Stored before its expiry was capped at the maximum age.
		if err := s.store.DeleteSession(ctx, ss.key()); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("session: delete failed", "err", err)
		}
		return ss
	}
	ss.user, ss.method, ss.signedInAt, ss.lastSeen = stored.User, stored.Method, stored.CreatedAt, stored.LastSeen
	s.touch(ctx, ss)
	return ss
}

// sessionExpiry is when a session signed in at signedIn and seen at now
// ends unless it is seen again: after the idle timeout, but never later
// than the maximum age after sign-in.
func (s *Server) sessionExpiry(signedIn, now time.Time) time.Time {
	idle, absolute := now.Add(s.cfg.SessionIdleTimeout), signedIn.Add(s.cfg.SessionMaxAge)
	if absolute.Before(idle) {
		return absolute
	}
	return idle
}

// touch records that a signed-in session was seen, but writes only when
// its last record is older than a tenth of the idle timeout (at most five
// minutes), so viewing pages does not write to disk each time.
func (s *Server) touch(ctx context.Context, ss *session) {
	now := s.now()
	every := min(s.cfg.SessionIdleTimeout/10, 5*time.Minute)
	if now.Sub(ss.lastSeen) < every {
		return
	}
	err := s.store.TouchSession(ctx, ss.key(), now, s.sessionExpiry(ss.signedInAt, now))
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Error("session: touch failed", "err", err)
		return
	}
	ss.lastSeen = now
}

// visitor returns sess, or a new visitor session with its cookie set when
// the request had none.
func (s *Server) visitor(w http.ResponseWriter, sess *session) *session {
	if sess != nil {
		return sess
	}
	sess = &session{id: randomToken(sessionIDBytes)}
	s.setSessionCookie(w, sess)
	return sess
}

// startSession signs user in: it stores a new session and sets its cookie.
// The cookie is new, so a value planted in the browser before sign-in
// (session fixation) is worthless afterwards.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, user, method string) error {
	now := s.now()
	ss := &session{id: randomToken(sessionIDBytes), user: user, method: method, signedInAt: now, lastSeen: now}
	err := s.store.CreateSession(ctx, LoginSession{
		ID: ss.key(), User: user, Method: method,
		CreatedAt: now, LastSeen: now, ExpiresAt: s.sessionExpiry(now, now),
	}, maxSessions)
	if err != nil {
		return err
	}
	s.setSessionCookie(w, ss)
	return nil
}

// endSession signs a session out on the server, whatever the browser does
// with its cookie, and sends a new visitor cookie in its place.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, sess *session) *session {
	if sess != nil && sess.user != "" {
		if err := s.store.DeleteSession(ctx, sess.key()); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("session: delete failed", "err", err)
		}
	}
	return s.visitor(w, nil)
}

// signedIn reports whether sess belongs to a user who still exists; a
// removed user's session ends here.
func (s *Server) signedIn(ctx context.Context, sess *session) bool {
	if sess == nil || sess.user == "" {
		return false
	}
	ok, err := s.store.UserExists(ctx, sess.user)
	if err != nil {
		s.log.Error("session: user lookup failed", "err", err)
		return false
	}
	if !ok {
		if err := s.store.DeleteSession(ctx, sess.key()); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("session: delete failed", "err", err)
		}
		return false
	}
	return true
}

func (s *Server) setSessionCookie(w http.ResponseWriter, ss *session) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.sessionCookie(),
		Value:    ss.id,
		Path:     s.sessionCookiePath(),
		HttpOnly: true,
		Secure:   isHTTPS(s.issuer),
		SameSite: http.SameSiteLaxMode,
	})
}

func isHTTPS(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && u.Scheme == "https"
}
