package authz

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// fullDisk is a memStore whose writes fail with ErrUnavailable while full
// is set, as the bbolt store's do when its disk is full.
type fullDisk struct {
	*memStore
	full atomic.Bool
}

func (f *fullDisk) fail() error {
	if f.full.Load() {
		return fmt.Errorf("%w: the disk is full", ErrUnavailable)
	}
	return nil
}

func (f *fullDisk) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.CreateAuthorizeCodeSession(ctx, sig, r)
}

func (f *fullDisk) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.CreateAccessTokenSession(ctx, sig, r)
}

func (f *fullDisk) RotateRefreshToken(ctx context.Context, id, sig string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.RotateRefreshToken(ctx, id, sig)
}

func (f *fullDisk) CreateClient(ctx context.Context, c *Client) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.CreateClient(ctx, c)
}

func (f *fullDisk) UpdateClient(ctx context.Context, id string, fn func(*Client) error) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.UpdateClient(ctx, id, fn)
}

func (f *fullDisk) PutConsent(ctx context.Context, c Consent) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.PutConsent(ctx, c)
}

func (f *fullDisk) Commit(ctx context.Context) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.memStore.Commit(ctx)
}

// errorLog counts the records logged at error level.
type errorLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *errorLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *errorLog) errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), "level=ERROR")
}

// TestStorageUnavailable: when the storage cannot write (a full disk),
// every request that needs a write is answered 503
// temporarily_unavailable, the requests log no error of their own (the
// storage logs why, once a minute), and issued tokens keep verifying.
func TestStorageUnavailable(t *testing.T) {
	disk := &fullDisk{memStore: newMemStore()}
	logs := &errorLog{}
	e := newEnv(t, func(c *Config) {
		c.Storage = disk
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	e.store = disk.memStore
	pub := e.registerPublic("http://127.0.0.1/cb")
	cc := e.registerConfidential("notes:read")
	tok := e.codeFlow(e.browser(), pub.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
	b := e.browser() // signed in and consented before the disk fills
	e.authorize(b, authRequest{clientID: pub.ClientID, redirect: "http://127.0.0.1:9100/cb", scope: "notes:read", verifier: "v" + strings.Repeat("x", 43), state: "state-123456"})
	disk.full.Store(true)
	e.clock.Advance(2 * time.Minute) // past touchClient's once-a-minute

	want503 := func(t *testing.T, what string, st int, out map[string]any, h http.Header) {
		t.Helper()
		if st != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
			t.Errorf("%s: %d %v; want 503 temporarily_unavailable", what, st, out)
		}
		if h != nil && h.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
	}
	t.Run("client_credentials is 503 temporarily_unavailable", func(t *testing.T) {
		st, out, h := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, cc.ClientID, cc.ClientSecret)
		want503(t, "client_credentials", st, out, h)
	})
	t.Run("a refresh is 503 temporarily_unavailable", func(t *testing.T) {
		st, out, h := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {pub.ClientID}}, "", "")
		want503(t, "refresh", st, out, h)
	})
	t.Run("a registration is 503 temporarily_unavailable", func(t *testing.T) {
		var out map[string]any
		resp := e.postJSON("/register", `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`, &out)
		want503(t, "register", resp.StatusCode, out, resp.Header)
	})
	t.Run("an authorization redirects with temporarily_unavailable", func(t *testing.T) {
		loc := e.authorize(b, authRequest{clientID: pub.ClientID, redirect: "http://127.0.0.1:9100/cb", scope: "notes:read", verifier: "v" + strings.Repeat("y", 43), state: "state-123456"})
		if got := loc.Query().Get("error"); got != "temporarily_unavailable" || loc.Query().Get("iss") == "" {
			t.Errorf("redirect %s; want error=temporarily_unavailable with iss", loc)
		}
	})
	t.Run("issued tokens keep verifying", func(t *testing.T) {
		if err := e.verify(tok.AccessToken); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	t.Run("no request logs an error of its own", func(t *testing.T) {
		if n := logs.errors(); n != 0 {
			t.Errorf("%d error lines:\n%s", n, logs.buf.String())
		}
	})
	t.Run("when the disk has room again, the same requests succeed", func(t *testing.T) {
		disk.full.Store(false)
		if st, out, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, cc.ClientID, cc.ClientSecret); st != http.StatusOK {
			t.Errorf("client_credentials: %d %v", st, out)
		}
		if st, out := e.refresh(pub.ClientID, tok.RefreshToken); st != http.StatusOK {
			t.Errorf("refresh: %d %v", st, out)
		}
	})
}
