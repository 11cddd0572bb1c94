package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// txStore records the transactions the token endpoint opens around a
// refresh, and can make the successor write fail.
type txStore struct {
	*memStore
	mu                         sync.Mutex
	begins, commits, rollbacks int
	putInTx                    bool
	failPut                    bool
	panicPut                   bool
}

type txKey struct{}

// openTx is a transaction in a context; joins counts the BeginTX calls
// that joined it, whose Commit or Rollback ends only the join, as in the
// bbolt store.
type openTx struct{ joins int }

func (s *txStore) BeginTX(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tx, ok := ctx.Value(txKey{}).(*openTx); ok {
		tx.joins++ // fosite's own BeginTX joins the open one
		return ctx, nil
	}
	s.begins++
	return context.WithValue(ctx, txKey{}, &openTx{}), nil
}

func (s *txStore) end(ctx context.Context, counter *int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tx, ok := ctx.Value(txKey{}).(*openTx); ok && tx.joins > 0 {
		tx.joins--
		return nil
	}
	*counter++
	return nil
}

func (s *txStore) Commit(ctx context.Context) error { return s.end(ctx, &s.commits) }

func (s *txStore) Rollback(ctx context.Context) error { return s.end(ctx, &s.rollbacks) }

func (s *txStore) PutRefreshSuccessor(ctx context.Context, sig string, sealed []byte, exp time.Time) error {
	s.mu.Lock()
	s.putInTx = ctx.Value(txKey{}) != nil
	fail, panicking := s.failPut, s.panicPut
	s.mu.Unlock()
	if panicking {
		panic("successor write panicked")
	}
	if fail {
		return errors.New("disk full")
	}
	return s.memStore.PutRefreshSuccessor(ctx, sig, sealed, exp)
}

func TestRefreshRotationAndSuccessorShareOneTransaction(t *testing.T) {
	setup := func(t *testing.T) (*env, *txStore, string, string) {
		ts := &txStore{memStore: newMemStore()}
		e := newEnv(t, func(c *Config) { c.Storage = ts })
		reg := e.registerPublic("http://127.0.0.1/cb")
		tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
		ts.mu.Lock()
		ts.begins, ts.commits, ts.rollbacks = 0, 0, 0 // count the refresh only
		ts.mu.Unlock()
		return e, ts, reg.ClientID, tok.RefreshToken
	}

	t.Run("the successor is written inside the rotation's transaction", func(t *testing.T) {
		e, ts, clientID, refresh := setup(t)
		if st, out := e.refresh(clientID, refresh); st != 200 {
			t.Fatalf("refresh: %d %v", st, out)
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if !ts.putInTx || ts.begins != 1 || ts.commits != 1 || ts.rollbacks != 0 {
			t.Errorf("put in tx %v, begins %d, commits %d, rollbacks %d; want true, 1, 1, 0", ts.putInTx, ts.begins, ts.commits, ts.rollbacks)
		}
	})

	t.Run("a panic inside the transaction rolls it back", func(t *testing.T) {
		e, ts, clientID, refresh := setup(t)
		ts.panicPut = true
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}
		resp, err := http.PostForm(e.url("/token"), form) // net/http recovers the panic and drops the connection
		if err == nil {
			resp.Body.Close()
			t.Fatalf("refresh whose successor write panicked: %s; want the connection dropped", resp.Status)
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if ts.begins != 1 || ts.commits != 0 || ts.rollbacks != 1 {
			t.Errorf("begins %d, commits %d, rollbacks %d; want 1, 0, 1", ts.begins, ts.commits, ts.rollbacks)
		}
	})

	t.Run("a failed successor write rolls the rotation back and fails the refresh", func(t *testing.T) {
		e, ts, clientID, refresh := setup(t)
		ts.failPut = true
		st, out := e.refresh(clientID, refresh)
		if st != 500 || out["error"] != "server_error" {
			t.Errorf("refresh with a failing successor write: %d %v; want 500 server_error", st, out)
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if ts.rollbacks == 0 || ts.commits != 0 {
			t.Errorf("commits %d, rollbacks %d; want the transaction rolled back", ts.commits, ts.rollbacks)
		}
	})

	t.Run("without a grace window the rotation commits through fosite alone", func(t *testing.T) {
		ts := &txStore{memStore: newMemStore()}
		e := newEnv(t, func(c *Config) { c.Storage = ts; c.RefreshGrace = 0 })
		reg := e.registerPublic("http://127.0.0.1/cb")
		tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9100/cb", "notes:read")
		if st, out := e.refresh(reg.ClientID, tok.RefreshToken); st != 200 {
			t.Fatalf("refresh: %d %v", st, out)
		}
		if ts.putInTx {
			t.Error("a successor was stored with the grace window off")
		}
	})
}
