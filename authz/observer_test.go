package authz

import (
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type countingObserver struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *countingObserver) add(k string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.counts[k]++
}

func (o *countingObserver) TokenIssued(g string)      { o.add("issued:" + g) }
func (o *countingObserver) TokenVerified(out string)  { o.add("verified:" + out) }
func (o *countingObserver) ClientRegistered(s string) { o.add("registered:" + s) }

func TestObserverCounts(t *testing.T) {
	obs := &countingObserver{counts: map[string]int{}}
	e := newEnv(t, func(c *Config) { c.Observer = obs })
	reg := e.registerConfidential("notes:read")
	_, out, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, reg.ClientID, reg.ClientSecret)
	_ = e.verify(out["access_token"].(string))
	_ = e.verify("nonsense")
	want := map[string]int{"registered:dynamic": 1, "issued:client_credentials": 1, "verified:valid": 1, "verified:unknown": 1}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if diff := cmp.Diff(want, obs.counts); diff != "" {
		t.Errorf("observer counts (-want +got):\n%s", diff)
	}
}
