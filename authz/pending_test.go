package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// pendingCount is how many live pending authorizations the store keeps.
func (m *memStore) pendingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, p := range m.pending {
		if m.clockNow().Before(p.ExpiresAt) {
			n++
		}
	}
	return n
}

// TestPendingAuthorizationsAgainstFloods: anyone can open /authorize, and
// each visit without a session keeps the request in the store until the
// visitor signs in. A flood of visits must neither grow the database by
// the size of the requests it sends nor push out, at the store's cap, the
// requests of people who are signing in.
func TestPendingAuthorizationsAgainstFloods(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	reg := e.registerPublic("http://127.0.0.1/cb")
	authURL := func(state string) string {
		return e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", state: state, verifier: oauth2.GenerateVerifier()})
	}
	from := func(addr, u string) page {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Forwarded-For", addr)
		return e.browser().do(req)
	}

	t.Run("a request too long to keep is refused with a page, not stored and not redirected", func(t *testing.T) {
		before := e.store.pendingCount()
		got := from("192.0.2.1", authURL(strings.Repeat("s", maxAuthorizeQuery)))
		if got.status != http.StatusRequestURITooLong || got.header.Get("Location") != "" || !strings.Contains(got.body, "too long") {
			t.Errorf("status %d Location %q; want 414 and a page saying it is too long: %.300s", got.status, got.header.Get("Location"), got.body)
		}
		if n := e.store.pendingCount(); n != before {
			t.Errorf("%d pending authorizations stored; want %d", n, before)
		}
		if got := from("192.0.2.1", authURL(strings.Repeat("s", 1000))); !isLoginPage(got) {
			t.Errorf("a request with a 1000-character state: status %d; want the login page", got.status)
		}
	})

	t.Run("one address gets the login page so many times a minute, then 429, and stores nothing more", func(t *testing.T) {
		before := e.store.pendingCount()
		for i := range maxVisitorRequestsPerMinute - 1 { // one was used above
			if got := from("192.0.2.1", authURL("")); !isLoginPage(got) {
				t.Fatalf("visit %d: status %d; want the login page", i+2, got.status)
			}
		}
		got := from("192.0.2.1", authURL(""))
		if got.status != http.StatusTooManyRequests || got.header.Get("Location") != "" {
			t.Errorf("visit %d: status %d Location %q; want 429 and no redirect", maxVisitorRequestsPerMinute+1, got.status, got.header.Get("Location"))
		}
		if n := e.store.pendingCount() - before; n != maxVisitorRequestsPerMinute-1 {
			t.Errorf("%d requests stored; want %d", n, maxVisitorRequestsPerMinute-1)
		}
	})

	t.Run("another address still signs in meanwhile", func(t *testing.T) {
		if got := from("198.51.100.7", authURL("")); !isLoginPage(got) {
			t.Errorf("status %d; want the login page", got.status)
		}
	})

	t.Run("a signed-in user's consent pages are not counted", func(t *testing.T) {
		b := e.browser()
		b.signIn(t, e, "alice", "correct horse")
		for i := range maxVisitorRequestsPerMinute + 1 {
			req, _ := http.NewRequest(http.MethodGet, authURL(""), nil)
			req.Header.Set("X-Forwarded-For", "192.0.2.1")
			if got := b.do(req); !isConsentPage(got) {
				t.Fatalf("consent page %d: status %d; want the consent page", i+1, got.status)
			}
		}
	})

	t.Run("a minute later the address gets the login page again", func(t *testing.T) {
		e.clock.Advance(time.Minute)
		if got := from("192.0.2.1", authURL("")); !isLoginPage(got) {
			t.Errorf("status %d; want the login page", got.status)
		}
	})
}
