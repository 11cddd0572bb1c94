package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpd/mcpd/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openTest opens a store in a fresh temporary directory and checks the
// file's consistency when the test ends.
func openTest(t testing.TB, opts *store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("Check at clean-up: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// addClient registers a public client.
func addClient(t testing.TB, s *store.Store, id string) {
	t.Helper()
	err := s.CreateClient(context.Background(), &store.Client{
		ID:                      id,
		Name:                    "client " + id,
		RedirectURIs:            []string{"http://127.0.0.1/"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scopes:                  []string{"notes:read", "notes:write"},
		TokenEndpointAuthMethod: "none",
		Source:                  store.SourceDynamic,
	})
	if err != nil {
		t.Fatalf("CreateClient(%q): %v", id, err)
	}
}
