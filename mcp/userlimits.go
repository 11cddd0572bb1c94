package mcp

import (
	"net/http"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// userLimits caps what one principal (a user, or a client-credentials
// client: auth.TokenInfo.UserID) may hold on /mcp, so that one token cannot
// fill the server's memory with sessions or its connections with streams:
//
//   - requests open at once (event streams and calls alike): over
//     maxStreams, a request is answered 429;
//   - live sessions: at maxSessions, an initialize closes the principal's
//     least recently used session that has no request open (its client
//     gets 404 on its next request and starts a new session, as the
//     transport specifies); when every session is in use, 429.
//
// A cap of 0 is no cap.
type userLimits struct {
	maxSessions int
	maxStreams  int
	server      *sdk.Server
	now         func() time.Time

	mu    sync.Mutex
	users map[string]*userUse
}

// userUse is what one principal holds now.
type userUse struct {
	open     int                     // requests open
	pending  int                     // initializes under way
	sessions map[string]*heldSession // by session id
}

type heldSession struct {
	ss       *sdk.ServerSession
	open     int // requests open on this session
	lastUsed time.Time
}

func newUserLimits(maxSessions, maxStreams int, server *sdk.Server, now func() time.Time) *userLimits {
	return &userLimits{maxSessions: maxSessions, maxStreams: maxStreams, server: server, now: now, users: make(map[string]*userUse)}
}

const sessionIDHeader = "Mcp-Session-Id"

// middleware enforces the caps. It runs after requireBearer (it needs the
// principal) and after readInbound (it reads the calls decoded there).
func (l *userLimits) middleware(stateless bool, next http.Handler) http.Handler {
	if l.maxSessions <= 0 && l.maxStreams <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti, err := verifiedTokenInfo(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sid := r.Header.Get(sessionIDHeader)
		in := inboundFrom(r.Context())
		creates := !stateless && !in.stateless && sid == "" && r.Method == http.MethodPost && isInitialize(in.calls)
		held, evicted, refusal := l.enter(ti.UserID, sid, creates)
		for _, ss := range evicted {
			ss.Close()
		}
		if refusal != "" {
			w.Header().Set("Retry-After", "5")
			http.Error(w, refusal, http.StatusTooManyRequests)
			return
		}
		defer func() {
			var created *sdk.ServerSession
			if creates {
				created = l.findSession(w.Header().Get(sessionIDHeader))
			}
			l.leave(ti.UserID, held, creates, created)
		}()
		next.ServeHTTP(w, r)
	})
}

// isInitialize reports whether calls are a single initialize request, the
// only request that opens a session (in the 2025 era).
func isInitialize(calls []rpcCall) bool {
	return len(calls) == 1 && calls[0].Method == "initialize"
}

// enter counts a request of user (on session sid, if any) and returns the
// held session it counted the request on (if any), the sessions to close
// to make room, or why the request is refused.
func (l *userLimits) enter(user, sid string, creates bool) (held *heldSession, evicted []*sdk.ServerSession, refusal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[user]
	if u == nil {
		u = &userUse{sessions: make(map[string]*heldSession)}
		l.users[user] = u
	}
	if l.maxStreams > 0 && u.open >= l.maxStreams {
		l.dropIfIdle(user, u)
		return nil, nil, "too many requests open on /mcp for this user; close some event streams or sessions and try again"
	}
	if creates && l.maxSessions > 0 {
		for len(u.sessions)+u.pending >= l.maxSessions {
			var lru *heldSession
			var lruID string
			for id, hs := range u.sessions {
				if hs.open == 0 && (lru == nil || hs.lastUsed.Before(lru.lastUsed)) {
					lru, lruID = hs, id
				}
			}
			if lru == nil {
				l.dropIfIdle(user, u)
				return nil, nil, "too many MCP sessions in use for this user; end some (DELETE /mcp) and try again"
			}
			delete(u.sessions, lruID)
			evicted = append(evicted, lru.ss)
		}
		u.pending++
	}
	if sid != "" {
		if held = u.sessions[sid]; held != nil {
			held.open++
			held.lastUsed = l.now()
		}
	}
	u.open++
	return held, evicted, ""
}

// leave uncounts a request that enter counted (on held, if not nil);
// created is the session it opened, if any.
func (l *userLimits) leave(user string, held *heldSession, creates bool, created *sdk.ServerSession) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[user]
	if u == nil {
		return
	}
	u.open--
	if held != nil {
		// Counted even when the session has been forgotten meanwhile.
		held.open--
		held.lastUsed = l.now()
	}
	if creates {
		u.pending--
		if created != nil {
			id := created.ID()
			u.sessions[id] = &heldSession{ss: created, lastUsed: l.now()}
			go func() {
				created.Wait()
				l.forget(user, id)
			}()
		}
	}
	l.dropIfIdle(user, u)
}

// forget removes a session that ended (closed by its client, evicted, or
// at shutdown).
func (l *userLimits) forget(user, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.users[user]; u != nil {
		delete(u.sessions, id)
		l.dropIfIdle(user, u)
	}
}

func (l *userLimits) dropIfIdle(user string, u *userUse) {
	if u.open == 0 && u.pending == 0 && len(u.sessions) == 0 {
		delete(l.users, user)
	}
}

// findSession returns the live session with id, nil when there is none
// (no session was created, or it was closed already because its
// initialization failed).
func (l *userLimits) findSession(id string) *sdk.ServerSession {
	if id == "" {
		return nil
	}
	for ss := range l.server.Sessions() {
		if ss.ID() == id {
			return ss
		}
	}
	return nil
}
