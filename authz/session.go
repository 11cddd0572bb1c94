package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// sessionCookie names the login cookie. Over https it carries the
// __Host- prefix, which browsers only accept Secure, host-only, on path /;
// under an issuer path (https://host/mcpd) the cookie is scoped to that
// path (sessionCookiePath) and carries __Secure- instead.
func (s *Server) sessionCookie() string {
	switch {
	case !isHTTPS(s.issuer):
		return "mcpd_session"
	case s.issuerPath != "":
		return "__Secure-mcpd_session"
	}
	return "__Host-mcpd_session"
}

// sessionCookiePath is the issuer's path, or / without one: behind a
// proxy serving mcpd under /mcpd the browser sends the cookie to mcpd
// only, not to the host's other applications, and two mcpd under one host
// keep a session each.
func (s *Server) sessionCookiePath() string {
	if s.issuerPath != "" {
		return s.issuerPath
	}
	return "/"
}

// visitorIdle ends a session that never logged in sooner than a login.
const visitorIdle = time.Hour

// session is a browser's login state, kept in memory.
type session struct {
	id       string
	user     string // empty until login
	csrfKey  []byte
	lastSeen time.Time
}

type sessionStore struct {
	mu   sync.Mutex
	idle time.Duration
	now  func() time.Time
	m    map[string]*session
}

func newSessionStore(idle time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{idle: idle, now: now, m: make(map[string]*session)}
}

// get returns the live session of id and touches it; nil if none.
func (st *sessionStore) get(id string) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.now()
	ss := st.m[id]
	if ss == nil {
		return nil
	}
	if t.Sub(ss.lastSeen) > st.idle || (ss.user == "" && t.Sub(ss.lastSeen) > visitorIdle) {
		delete(st.m, id)
		return nil
	}
	ss.lastSeen = t
	cp := *ss
	return &cp
}

// maxSessions bounds memory: every visitor to /authorize gets a session.
const maxSessions = 10000

// create starts a new session for user ("" for a visitor not yet logged in).
func (st *sessionStore) create(user string) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.now()
	if len(st.m) >= maxSessions/2 {
		for id, ss := range st.m {
			if t.Sub(ss.lastSeen) > st.idle || (ss.user == "" && t.Sub(ss.lastSeen) > visitorIdle) {
				delete(st.m, id)
			}
		}
	}
	for id, ss := range st.m {
		if len(st.m) < maxSessions {
			break
		}
		if ss.user == "" { // drop visitors before signed-in users
			delete(st.m, id)
		}
	}
	for id := range st.m {
		if len(st.m) < maxSessions {
			break
		}
		delete(st.m, id)
	}
	ss := &session{id: randomToken(32), user: user, csrfKey: []byte(randomToken(32)), lastSeen: t}
	st.m[ss.id] = ss
	cp := *ss
	return &cp
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

// csrfToken binds a form to the session, the purpose and the pending
// authorization request.
func (ss *session) csrfToken(purpose, requestID string) string {
	m := hmac.New(sha256.New, ss.csrfKey)
	m.Write([]byte(purpose + "\x00" + requestID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (ss *session) checkCSRF(purpose, requestID, token string) bool {
	want := ss.csrfToken(purpose, requestID)
	return token != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

// currentSession returns the request's live session, or nil.
func (s *Server) currentSession(r *http.Request) *session {
	c, err := r.Cookie(s.sessionCookie())
	if err != nil || c.Value == "" {
		return nil
	}
	return s.sessions.get(c.Value)
}

// signedIn reports whether sess belongs to a user who still exists; a
// removed user's session ends here.
func (s *Server) signedIn(ctx context.Context, sess *session) bool {
	if sess.user == "" {
		return false
	}
	ok, err := s.store.UserExists(ctx, sess.user)
	if err != nil {
		s.log.Error("session: user lookup failed", "err", err)
		return false
	}
	if !ok {
		s.sessions.delete(sess.id)
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

// pendingRequest is an authorization request waiting for login or consent.
type pendingRequest struct {
	form     url.Values
	clientID string
	created  time.Time
}

// pendingStore keeps pending authorization requests by a random id.
type pendingStore struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	m   map[string]pendingRequest
}

const maxPending = 10000

func newPendingStore(ttl time.Duration, now func() time.Time) *pendingStore {
	return &pendingStore{ttl: ttl, now: now, m: make(map[string]pendingRequest)}
}

func (p *pendingStore) put(form url.Values, clientID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	if len(p.m) >= maxPending/2 {
		for id, pr := range p.m {
			if t.Sub(pr.created) > p.ttl {
				delete(p.m, id)
			}
		}
	}
	if len(p.m) >= maxPending {
		for id := range p.m { // drop an arbitrary one rather than grow without bound
			delete(p.m, id)
			break
		}
	}
	id := randomToken(24)
	p.m[id] = pendingRequest{form: form, clientID: clientID, created: t}
	return id
}

// get returns the pending request of id if it has not expired.
func (p *pendingStore) get(id string) (pendingRequest, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.m[id]
	if !ok {
		return pendingRequest{}, false
	}
	if p.now().Sub(pr.created) > p.ttl {
		delete(p.m, id)
		return pendingRequest{}, false
	}
	return pr, true
}

// take removes and returns the pending request of id.
func (p *pendingStore) take(id string) (pendingRequest, bool) {
	pr, ok := p.get(id)
	if ok {
		p.mu.Lock()
		_, still := p.m[id]
		delete(p.m, id)
		p.mu.Unlock()
		ok = still
	}
	return pr, ok
}
