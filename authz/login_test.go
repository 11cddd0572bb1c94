package authz

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// slowAuthStore makes password checks take a while, as argon2id does, and
// counts them.
type slowAuthStore struct {
	*memStore
	calls atomic.Int32
}

func (s *slowAuthStore) Authenticate(ctx context.Context, name, password string) error {
	s.calls.Add(1)
	time.Sleep(50 * time.Millisecond)
	return s.memStore.Authenticate(ctx, name, password)
}

func TestLoginRateLimitUnderConcurrency(t *testing.T) {
	var slow *slowAuthStore
	e := newEnv(t, func(c *Config) {
		slow = &slowAuthStore{memStore: c.Storage.(*memStore)}
		c.Storage = slow
	})
	reg := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", verifier: oauth2.GenerateVerifier()}))
	form := url.Values{
		"csrf_token": {hiddenField(t, p.body, "csrf_token")},
		"request_id": {hiddenField(t, p.body, "request_id")},
		"username":   {"alice"},
		"password":   {"wrong"},
	}

	t.Run("concurrent wrong passwords for one user check at most the limit", func(t *testing.T) {
		const n = 12
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = b.post(e.url(loginPath), form).status
			}()
		}
		wg.Wait()
		if got := slow.calls.Load(); got > 5 {
			t.Errorf("%d password checks for one user in parallel; want at most 5 (statuses %v)", got, statuses)
		}
		for _, st := range statuses {
			if st == http.StatusSeeOther {
				t.Errorf("a wrong password signed in (statuses %v)", statuses)
			}
		}
	})
}
