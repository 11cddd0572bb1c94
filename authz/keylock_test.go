package authz

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestTwoServersOnOneStorage runs two authorization servers on one
// storage, as replicas on one database do: each has its own in-process
// locks, so only the storage's LockKey keeps their token requests on one
// refresh token or code from racing.
func TestTwoServersOnOneStorage(t *testing.T) {
	a := newEnv(t, func(c *Config) { c.RefreshGrace = time.Minute })
	b := newEnv(t, func(c *Config) {
		c.RefreshGrace = time.Minute
		c.Issuer = a.ts.URL // one issuer, so either accepts the other's tokens
		c.Storage = a.store
		c.Now = a.clock.Now
	})
	reg := a.registerPublic("http://127.0.0.1/cb")

	// concurrently sends form to both servers at once.
	concurrently := func(form url.Values) ([]int, []map[string]any) {
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		outs := make([]map[string]any, 2)
		start := make(chan struct{})
		for i, e := range []*env{a, b} {
			wg.Go(func() {
				<-start
				statuses[i], outs[i], _ = e.tokenRequest(form, "", "")
			})
		}
		close(start)
		wg.Wait()
		return statuses, outs
	}

	t.Run("concurrent refreshes of one token on two servers get the same successor", func(t *testing.T) {
		tok := a.codeFlow(a.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
		current := tok.RefreshToken
		for round := range 20 {
			statuses, outs := concurrently(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {current}, "client_id": {reg.ClientID}})
			if diff := cmp.Diff([]int{200, 200}, statuses); diff != "" {
				t.Fatalf("round %d: statuses (-want +got):\n%s\n%v", round, diff, outs)
			}
			if diff := cmp.Diff(outs[0], outs[1]); diff != "" {
				t.Fatalf("round %d: the servers answered differently (the grant forked):\n%s", round, diff)
			}
			current = outs[0]["refresh_token"].(string)
		}
		if err := b.verify(current); err == nil {
			t.Errorf("a refresh token verified as an access token")
		}
	})

	t.Run("a code exchanged on two servers at once gives tokens once", func(t *testing.T) {
		for round := range 10 {
			redirect := "http://127.0.0.1:9100/cb"
			ar := authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()}
			loc := a.authorize(a.browser(), ar)
			code := loc.Query().Get("code")
			statuses, outs := concurrently(url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "client_id": {reg.ClientID},
				"redirect_uri": {redirect}, "code_verifier": {ar.verifier},
			})
			ok := 0
			for _, st := range statuses {
				if st == 200 {
					ok++
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d exchanges of one code succeeded; want 1: %v", round, ok, outs)
			}
		}
	})
}
