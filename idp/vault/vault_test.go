package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
	"github.com/mcpd/mcpd/idp/vault"
)

// memStore is a vault.Store in memory, for users "ada" and "bob".
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) PutUpstreamToken(_ context.Context, user, provider string, sealed []byte) error {
	if user != "ada" && user != "bob" {
		return vault.ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[user+"/"+provider] = bytes.Clone(sealed)
	return nil
}

func (s *memStore) GetUpstreamToken(_ context.Context, user, provider string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[user+"/"+provider]
	if !ok {
		return nil, vault.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (s *memStore) DeleteUpstreamToken(_ context.Context, user, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, user+"/"+provider)
	return nil
}

// refresher hands out access-N tokens, slowly, counting its calls.
type refresher struct {
	calls  atomic.Int32
	err    error
	keep   bool // answer without a new refresh token
	delay  time.Duration
	now    func() time.Time // the vault's clock
	onCall func()           // runs at each call, before the answer
}

func (r *refresher) Refresh(_ context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	n := r.calls.Add(1)
	time.Sleep(r.delay)
	if r.onCall != nil {
		r.onCall()
	}
	if r.err != nil {
		return nil, r.err
	}
	nt := &oauth2.Token{AccessToken: fmt.Sprintf("access-%d", n), Expiry: r.now().Add(time.Hour)}
	if !r.keep {
		nt.RefreshToken = fmt.Sprintf("refresh-%d", n)
	}
	return nt, nil
}

type fixture struct {
	v   *vault.Vault
	st  *memStore
	ref *refresher
	now *atomic.Int64 // unix seconds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	f := &fixture{st: &memStore{m: map[string][]byte{}}, ref: &refresher{}, now: &atomic.Int64{}}
	f.now.Store(time.Now().Unix())
	clock := func() time.Time { return time.Unix(f.now.Load(), 0) }
	f.ref.now = clock
	v, err := vault.New(vault.Config{Key: key, Store: f.st, Refreshers: map[string]vault.Refresher{"corp": f.ref}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func (f *fixture) save(t *testing.T, user string, tok *oauth2.Token) {
	t.Helper()
	if err := f.v.Save(context.Background(), user, "corp", tok); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func (f *fixture) advance(d time.Duration) { f.now.Add(int64(d / time.Second)) }

func TestVault(t *testing.T) {
	ctx := context.Background()
	hour := func(f *fixture) time.Time { return time.Unix(f.now.Load(), 0).Add(time.Hour) }

	t.Run("a live token comes back as saved and the provider is not asked", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-ada", RefreshToken: "rt-ada", Expiry: hour(f)})
		got, err := f.v.AccessToken(ctx, "ada", "corp")
		if err != nil || got != "at-ada" {
			t.Errorf("AccessToken = %q, %v; want at-ada", got, err)
		}
		if f.ref.calls.Load() != 0 {
			t.Error("a live token was refreshed")
		}
	})

	t.Run("the store holds neither token in plain text", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-plain-ada", RefreshToken: "rt-plain-ada", Expiry: hour(f)})
		sealed, _ := f.st.GetUpstreamToken(ctx, "ada", "corp")
		if bytes.Contains(sealed, []byte("at-plain-ada")) || bytes.Contains(sealed, []byte("rt-plain-ada")) {
			t.Errorf("sealed record holds a token in plain text: %q", sealed)
		}
	})

	t.Run("a sealed token moved to another user does not open and is forgotten", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-ada", Expiry: hour(f)})
		sealed, _ := f.st.GetUpstreamToken(ctx, "ada", "corp")
		f.st.PutUpstreamToken(ctx, "bob", "corp", sealed)
		if _, err := f.v.AccessToken(ctx, "bob", "corp"); !errors.Is(err, vault.ErrNoToken) {
			t.Errorf("AccessToken of the moved seal: got %v; want ErrNoToken", err)
		}
		if _, err := f.st.GetUpstreamToken(ctx, "bob", "corp"); !errors.Is(err, vault.ErrNotFound) {
			t.Error("the seal that does not open was kept")
		}
	})

	t.Run("no token kept is ErrNoToken", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.v.AccessToken(ctx, "ada", "corp"); !errors.Is(err, vault.ErrNoToken) {
			t.Errorf("got %v; want ErrNoToken", err)
		}
	})

	t.Run("an expired token is refreshed, kept sealed, and the refresh token carried over", func(t *testing.T) {
		f := newFixture(t)
		f.ref.keep = true
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt-ada", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		got, err := f.v.AccessToken(ctx, "ada", "corp")
		if err != nil || got != "access-1" {
			t.Fatalf("AccessToken = %q, %v; want the refreshed access-1", got, err)
		}
		f.ref.keep = false
		f.advance(2 * time.Hour)
		if got, err := f.v.AccessToken(ctx, "ada", "corp"); err != nil || got != "access-2" {
			t.Errorf("second expiry: AccessToken = %q, %v; want access-2 (refreshed with the carried refresh token)", got, err)
		}
	})

	t.Run("a token about to expire counts as expired", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt", Expiry: time.Unix(f.now.Load(), 0).Add(10 * time.Second)})
		if got, _ := f.v.AccessToken(ctx, "ada", "corp"); got != "access-1" {
			t.Errorf("AccessToken = %q; want it refreshed", got)
		}
	})

	t.Run("concurrent calls with an expired token refresh once", func(t *testing.T) {
		f := newFixture(t)
		f.ref.delay = 50 * time.Millisecond
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		var wg sync.WaitGroup
		got := make([]string, 20)
		for i := range got {
			wg.Go(func() { got[i], _ = f.v.AccessToken(ctx, "ada", "corp") })
		}
		wg.Wait()
		if n := f.ref.calls.Load(); n != 1 {
			t.Errorf("%d refreshes; want 1", n)
		}
		for i, g := range got {
			if g != "access-1" {
				t.Errorf("call %d got %q; want access-1", i, g)
			}
		}
	})

	t.Run("a refused refresh forgets the token: the user must sign in again", func(t *testing.T) {
		f := newFixture(t)
		f.ref.err = fmt.Errorf("%w: invalid_grant", idp.ErrRejected)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		if _, err := f.v.AccessToken(ctx, "ada", "corp"); !errors.Is(err, vault.ErrNoToken) {
			t.Errorf("got %v; want ErrNoToken", err)
		}
		if _, err := f.st.GetUpstreamToken(ctx, "ada", "corp"); !errors.Is(err, vault.ErrNotFound) {
			t.Error("the dead grant's token was kept")
		}
	})

	t.Run("a refresh refused because another process rotated the grant takes that process's token", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		// Another process refreshes first and keeps its token while this
		// one's refresh, with the rotated refresh token, is refused.
		f.ref.err = fmt.Errorf("%w: invalid_grant", idp.ErrRejected)
		f.ref.onCall = func() {
			f.save(t, "ada", &oauth2.Token{AccessToken: "at-other-process", RefreshToken: "rt2", Expiry: hour(f).Add(2 * time.Hour)})
		}
		got, err := f.v.AccessToken(ctx, "ada", "corp")
		if err != nil || got != "at-other-process" {
			t.Errorf("AccessToken = %q, %v; want the other process's token", got, err)
		}
		if _, err := f.st.GetUpstreamToken(ctx, "ada", "corp"); err != nil {
			t.Errorf("the other process's token was forgotten: %v", err)
		}
	})

	t.Run("a provider that cannot be reached keeps the token for the next try", func(t *testing.T) {
		f := newFixture(t)
		f.ref.err = fmt.Errorf("%w: connection refused", idp.ErrUnavailable)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		_, err := f.v.AccessToken(ctx, "ada", "corp")
		if err == nil || errors.Is(err, vault.ErrNoToken) || !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("got %v; want ErrUnavailable, not ErrNoToken", err)
		}
		f.ref.err = nil
		if got, err := f.v.AccessToken(ctx, "ada", "corp"); err != nil || got != "access-2" {
			t.Errorf("after the provider is back: %q, %v; want access-2", got, err)
		}
	})

	t.Run("an expired token without a refresh token is ErrNoToken", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "at-old", Expiry: hour(f)})
		f.advance(2 * time.Hour)
		if _, err := f.v.AccessToken(ctx, "ada", "corp"); !errors.Is(err, vault.ErrNoToken) {
			t.Errorf("got %v; want ErrNoToken", err)
		}
	})

	t.Run("expires_in counts from the vault's clock", func(t *testing.T) {
		f := newFixture(t)
		f.advance(24 * time.Hour) // the vault's clock is a day ahead of the wall clock
		f.save(t, "ada", &oauth2.Token{AccessToken: "at", RefreshToken: "rt", ExpiresIn: 3600, Expiry: time.Now().Add(time.Hour)})
		if got, _ := f.v.AccessToken(ctx, "ada", "corp"); got != "at" {
			t.Errorf("AccessToken = %q; want the saved token, live for an hour by the vault's clock", got)
		}
		f.advance(2 * time.Hour)
		if got, _ := f.v.AccessToken(ctx, "ada", "corp"); got != "access-1" {
			t.Errorf("AccessToken two hours on = %q; want it refreshed", got)
		}
	})

	t.Run("a token that never expires is used as is", func(t *testing.T) {
		f := newFixture(t)
		f.save(t, "ada", &oauth2.Token{AccessToken: "gho_forever"})
		f.advance(1000 * time.Hour)
		if got, err := f.v.AccessToken(ctx, "ada", "corp"); err != nil || got != "gho_forever" {
			t.Errorf("AccessToken = %q, %v; want gho_forever", got, err)
		}
	})

	t.Run("saving for a user that does not exist fails", func(t *testing.T) {
		f := newFixture(t)
		if err := f.v.Save(ctx, "nobody", "corp", &oauth2.Token{AccessToken: "x"}); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("got %v; want ErrNotFound", err)
		}
	})

	t.Run("a key of the wrong size is refused", func(t *testing.T) {
		if _, err := vault.New(vault.Config{Key: make([]byte, 16), Store: &memStore{}}); err == nil {
			t.Error("New accepted a 16-byte key")
		}
	})
}
