package mcp

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawSession opens a session with raw requests and returns its id.
func (env *testEnv) rawSession(t *testing.T, token string) (string, int) {
	t.Helper()
	resp := env.post(t, initializeBody, map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode
	}
	sid := resp.Header.Get(sessionIDHeader)
	if sid == "" {
		t.Fatal("initialize answered without a session id")
	}
	resp.Body.Close()
	n := env.post(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, map[string]string{"Authorization": "Bearer " + token, sessionIDHeader: sid, "MCP-Protocol-Version": "2025-06-18"})
	if n.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized notification: status %d", n.StatusCode)
	}
	env.settle(t, fakeTokens[token].UserID)
	return sid, http.StatusOK
}

// settle waits until user has no request open: a handler counts its
// request off only after the client has read the answer.
func (env *testEnv) settle(t *testing.T, user string) {
	t.Helper()
	waitUntil(t, func() bool { _, open := env.srv.users.held(user); return open == 0 })
}

// ping sends a ping on session sid and returns the status.
func (env *testEnv) ping(t *testing.T, token, sid string) int {
	t.Helper()
	resp := env.post(t, `{"jsonrpc":"2.0","id":7,"method":"ping"}`, map[string]string{"Authorization": "Bearer " + token, sessionIDHeader: sid, "MCP-Protocol-Version": "2025-06-18"})
	resp.Body.Close()
	env.settle(t, fakeTokens[token].UserID)
	return resp.StatusCode
}

// openStream opens the GET event stream of session sid and returns its
// status; the stream stays open until the test ends or stop is called.
func (env *testEnv) openStream(t *testing.T, token, sid string) (status int, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.ts.URL+Path, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(sessionIDHeader, sid)
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop = func() { cancel(); resp.Body.Close() }
	t.Cleanup(stop)
	return resp.StatusCode, stop
}

func TestSessionCapPerUser(t *testing.T) {
	t.Run("an initialize at the cap closes the least recently used idle session", func(t *testing.T) {
		// A clock that moves on at every reading: s1's ping is later than
		// s2's initialize, however coarse the machine's clock.
		var ticks atomic.Int64
		start := time.Now()
		env := newTestEnv(t, func(c *Config) {
			c.MaxSessionsPerUser = 2
			c.Now = func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
		})
		s1, _ := env.rawSession(t, "alice-all")
		s2, _ := env.rawSession(t, "alice-all")
		if st := env.ping(t, "alice-all", s1); st != http.StatusOK {
			t.Fatalf("ping s1: %d", st)
		}
		s3, st := env.rawSession(t, "alice-all")
		if st != http.StatusOK {
			t.Fatalf("third initialize: status %d; want 200", st)
		}
		got := map[string]int{"s1": env.ping(t, "alice-all", s1), "s2": env.ping(t, "alice-all", s2), "s3": env.ping(t, "alice-all", s3)}
		want := map[string]int{"s1": 200, "s2": 404, "s3": 200}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ping statuses (-want +got):\n%s", diff)
		}
	})
	t.Run("an initialize is refused with 429 while every session has a stream open", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.MaxSessionsPerUser = 1 })
		s1, _ := env.rawSession(t, "alice-all")
		st, stop := env.openStream(t, "alice-all", s1)
		if st != http.StatusOK {
			t.Fatalf("stream: status %d", st)
		}
		if _, st := env.rawSession(t, "alice-all"); st != http.StatusTooManyRequests {
			t.Errorf("initialize with the only session streaming: status %d; want 429", st)
		}
		if _, st := env.rawSession(t, "bob-all"); st != http.StatusOK {
			t.Errorf("another user's initialize: status %d; want 200 (the cap is per user)", st)
		}
		stop()
		waitUntil(t, func() bool { _, open := env.srv.users.held("alice"); return open == 0 })
		if _, st := env.rawSession(t, "alice-all"); st != http.StatusOK {
			t.Errorf("initialize once the stream closed: status %d; want 200", st)
		}
	})
	t.Run("a session that ends gives its place back", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.MaxSessionsPerUser = 5 })
		s1, _ := env.rawSession(t, "alice-all")
		waitUntil(t, func() bool { n, _ := env.srv.users.held("alice"); return n == 1 })
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, env.ts.URL+Path, nil)
		req.Header.Set("Authorization", "Bearer alice-all")
		req.Header.Set(sessionIDHeader, s1)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		waitUntil(t, func() bool { n, _ := env.srv.users.held("alice"); return n == 0 })
	})
}

func TestStreamCapPerUser(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxStreamsPerUser = 2 })
	var sids []string
	for range 3 {
		sid, _ := env.rawSession(t, "alice-all")
		sids = append(sids, sid)
	}
	var statuses []int
	for _, sid := range sids {
		st, _ := env.openStream(t, "alice-all", sid)
		statuses = append(statuses, st)
	}
	if diff := cmp.Diff([]int{200, 200, 429}, statuses); diff != "" {
		t.Errorf("stream statuses (-want +got):\n%s", diff)
	}
	if sid, st := env.rawSession(t, "bob-all"); st != http.StatusOK {
		t.Errorf("bob's initialize: %d", st)
	} else if st, _ := env.openStream(t, "bob-all", sid); st != http.StatusOK {
		t.Errorf("bob's stream while alice is at her cap: status %d; want 200", st)
	}
	// A call of alice's is a request too: refused while two streams are open.
	resp := env.post(t, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Authorization": "Bearer alice-all"})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("alice's call at the cap: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestThousandsOfSessionsFromOneToken(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxSessionsPerUser = 16 })
	for i := range 1000 {
		if _, st := env.rawSession(t, "alice-all"); st != http.StatusOK {
			t.Fatalf("initialize %d: status %d", i, st)
		}
	}
	live := 0
	for range env.srv.mcp.Sessions() {
		live++
	}
	if n, _ := env.srv.users.held("alice"); n > 16 || live > 16 {
		t.Errorf("after 1000 initializes alice holds %d sessions, the server %d; want at most 16", n, live)
	}
}

// waitUntil polls cond for up to ten seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// held returns the sessions and open requests user holds, for tests.
func (l *userLimits) held(user string) (sessions, open int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.users[user]; u != nil {
		return len(u.sessions), u.open
	}
	return 0, 0
}
