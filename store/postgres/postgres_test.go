package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

var bg = context.Background()

// open opens another store on url, as another replica would.
func open(t testing.TB, url string, opts *postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(bg, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sql runs a statement on url outside any store.
func sql(t testing.TB, url, query string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(bg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	if _, err := conn.Exec(bg, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func queryInt(t testing.TB, url, query string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(bg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	var n int
	if err := conn.QueryRow(bg, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// eventually polls cond every 10 ms until it holds or limit passes, and
// returns how long it took.
func eventually(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestMigrate(t *testing.T) {
	t.Run("replicas opening an empty database at once migrate it once", func(t *testing.T) {
		url := pgtest.URL(t)
		const replicas = 6
		var wg sync.WaitGroup
		errs := make(chan error, replicas)
		for range replicas {
			wg.Go(func() {
				s, err := postgres.Open(bg, url, &postgres.Options{NoTokenCache: true})
				if err != nil {
					errs <- err
					return
				}
				errs <- s.Close()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Open: %v", err)
			}
		}
		if n := queryInt(t, url, "SELECT count(*) FROM mcpd_schema_migrations"); n != postgres.SchemaVersion() {
			t.Errorf("migrations recorded: got %d; want %d, each once", n, postgres.SchemaVersion())
		}
		if n := queryInt(t, url, "SELECT max(version) FROM mcpd_schema_migrations"); n != postgres.SchemaVersion() {
			t.Errorf("schema version: got %d; want %d", n, postgres.SchemaVersion())
		}
	})

	t.Run("a schema written by a newer build is refused", func(t *testing.T) {
		url := pgtest.URL(t)
		s := open(t, url, &postgres.Options{NoTokenCache: true})
		s.Close()
		sql(t, url, "INSERT INTO mcpd_schema_migrations (version, name) VALUES (999, 'from the future')")
		_, err := postgres.Open(bg, url, &postgres.Options{NoTokenCache: true})
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("Open of a newer schema: got %v; want an error saying it is newer", err)
		}
	})

	t.Run("a failed connection's error does not show the password", func(t *testing.T) {
		url := pgtest.URL(t)
		bad := strings.Replace(url, "@", "x@", 1) // a wrong password
		_, err := postgres.Open(bg, bad, nil)
		if err == nil {
			t.Fatal("Open with a wrong password: got nil; want an error")
		}
		pw := bad[strings.Index(bad, "://")+3 : strings.Index(bad, "@")]
		pw = pw[strings.Index(pw, ":")+1:]
		if strings.Contains(err.Error(), pw) {
			t.Errorf("the error shows the password: %v", err)
		}
	})
}

// issueToken registers client c1 (once) and stores an access token of
// grant id for subject on s; it returns the token's signature.
func issueToken(t *testing.T, s *postgres.Store, id, subject string) string {
	t.Helper()
	if err := s.CreateClient(bg, &store.Client{ID: "c1", Source: store.SourceStatic}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(bg, "at-"+id, newRequest(id, "c1", subject)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(bg, "rt-"+id, "", newRequest(id, "c1", subject)); err != nil {
		t.Fatal(err)
	}
	return "at-" + id
}

func TestTokenCacheAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	// An hour of cache age: only a notification can make B refuse in time.
	a := open(t, url, &postgres.Options{TokenCacheMaxAge: time.Hour})
	b := open(t, url, &postgres.Options{TokenCacheMaxAge: time.Hour})
	eventually(t, "both listeners connected", 10*time.Second, func() bool { return a.TokenCacheOn() && b.TokenCacheOn() })

	// cachedOnB looks at up the token on B twice, so B caches it, and
	// proves B answers from its cache: the row is gone behind its back and
	// B still accepts the token.
	revocations := []struct {
		name   string
		revoke func(id string) error
	}{
		{"RevokeAccessToken", func(id string) error { return a.RevokeAccessToken(bg, id) }},
		{"RevokeSubjectGrants", func(id string) error { _, err := a.RevokeSubjectGrants(bg, "user-"+id); return err }},
		{"RevokeClientGrants", func(id string) error { _, err := a.RevokeClientGrants(bg, "c1"); return err }},
		{"DeleteUser", func(id string) error { return a.DeleteUser(bg, "user-"+id) }},
		{"DeleteClient", func(id string) error { return a.DeleteClient(bg, "c1") }},
	}
	for _, r := range revocations {
		t.Run("a token "+r.name+" on one replica revokes is refused by another", func(t *testing.T) {
			id := strings.ToLower(r.name)
			if r.name == "DeleteUser" {
				if err := a.CreateUser(bg, "user-"+id, "pw"); err != nil {
					t.Fatal(err)
				}
			}
			at := issueToken(t, a, id, "user-"+id)
			for range 2 {
				if _, err := b.LookupAccessToken(bg, at); err != nil {
					t.Fatalf("LookupAccessToken on B before: %v", err)
				}
			}
			if err := r.revoke(id); err != nil {
				t.Fatal(err)
			}
			if _, err := a.LookupAccessToken(bg, at); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("on A, right after: got %v; want ErrNotFound", err)
			}
			took := eventually(t, "B refuses the token", 5*time.Second, func() bool {
				_, err := b.LookupAccessToken(bg, at)
				return errors.Is(err, store.ErrNotFound)
			})
			t.Logf("B refused it %v after A's commit", took)
		})
	}

	t.Run("a replica answers a cached token without the database until told", func(t *testing.T) {
		at := issueToken(t, a, "cached", "someone")
		for range 2 {
			if _, err := b.LookupAccessToken(bg, at); err != nil {
				t.Fatal(err)
			}
		}
		// Behind every store's back: no notification.
		sql(t, url, "DELETE FROM tokens WHERE kind = 'a' AND request_id = 'cached'")
		if _, err := b.LookupAccessToken(bg, at); err != nil {
			t.Errorf("B after a silent delete: got %v; want its cached answer (the cache is not used)", err)
		}
	})

	t.Run("a replica whose listener lost its connection answers from the database only", func(t *testing.T) {
		at := issueToken(t, a, "listener", "someone")
		for range 2 {
			if _, err := b.LookupAccessToken(bg, at); err != nil {
				t.Fatal(err)
			}
		}
		// Cut every listener's connection; the stores reconnect by
		// themselves.
		sql(t, url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", postgres.ListenerApplicationName)
		eventually(t, "B's cache off", 5*time.Second, func() bool { return !b.TokenCacheOn() })
		sql(t, url, "DELETE FROM tokens WHERE kind = 'a' AND request_id = 'listener'")
		if _, err := b.LookupAccessToken(bg, at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("B without a listener after a silent delete: got %v; want ErrNotFound", err)
		}
		eventually(t, "B's listener back", 10*time.Second, b.TokenCacheOn)
	})
}

func TestTokenCacheMaxAge(t *testing.T) {
	url := pgtest.URL(t)
	a := open(t, url, nil)
	b := open(t, url, &postgres.Options{TokenCacheMaxAge: 200 * time.Millisecond})
	eventually(t, "listeners connected", 10*time.Second, func() bool { return a.TokenCacheOn() && b.TokenCacheOn() })
	at := issueToken(t, a, "g1", "alice")
	for range 2 {
		if _, err := b.LookupAccessToken(bg, at); err != nil {
			t.Fatal(err)
		}
	}
	// A rotation notifies nobody: B refuses the retired token once its
	// cached answer is older than its max age.
	if err := a.RotateRefreshToken(bg, "g1", "rt-g1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B refuses the token a rotation retired", 5*time.Second, func() bool {
		_, err := b.LookupAccessToken(bg, at)
		return errors.Is(err, store.ErrNotFound)
	})
}

func TestLockKeyAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	a := open(t, url, &postgres.Options{NoTokenCache: true})
	b := open(t, url, &postgres.Options{NoTokenCache: true})

	t.Run("a key held on one replica makes the other wait", func(t *testing.T) {
		unlock, err := a.LockKey(bg, "refresh:x")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
		defer cancel()
		if _, err := b.LockKey(ctx, "refresh:x"); err == nil {
			t.Fatal("B took a key A holds")
		}
		got := make(chan error, 1)
		go func() {
			u, err := b.LockKey(bg, "refresh:x")
			if err == nil {
				u()
			}
			got <- err
		}()
		unlock()
		if err := <-got; err != nil {
			t.Errorf("B after A let go: %v", err)
		}
	})

	t.Run("a holder whose session dies gives the key up", func(t *testing.T) {
		unlockA, err := a.LockKey(bg, "refresh:y")
		if err != nil {
			t.Fatal(err)
		}
		// The session that holds it ends, as when its process is killed.
		// (Only that lock's holder: other tests share the cluster.)
		sql(t, url, `SELECT pg_terminate_backend(pid) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1
			AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid`, postgres.LockID("refresh:y"))
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		unlock, err := b.LockKey(ctx, "refresh:y")
		if err != nil {
			t.Fatalf("B after A's session died: %v", err)
		}
		unlock()
		unlockA() // fails on the dead session, and gives its connection up
	})
}

func TestJanitorOneReplicaAtATime(t *testing.T) {
	url := pgtest.URL(t)
	s := open(t, url, &postgres.Options{NoTokenCache: true})
	conn, err := pgx.Connect(bg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	// Another replica's janitor is sweeping.
	if _, err := conn.Exec(bg, "SELECT pg_advisory_lock($1)", postgres.LockJanitor); err != nil {
		t.Fatal(err)
	}
	if _, swept, err := s.SweepOnce(bg); err != nil || swept {
		t.Errorf("while another replica sweeps: got swept %v, %v; want a skipped round", swept, err)
	}
	if _, err := conn.Exec(bg, "SELECT pg_advisory_unlock($1)", postgres.LockJanitor); err != nil {
		t.Fatal(err)
	}
	if _, swept, err := s.SweepOnce(bg); err != nil || !swept {
		t.Errorf("with nobody sweeping: got swept %v, %v; want a sweep", swept, err)
	}
	if n := queryInt(t, url, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid`, postgres.LockJanitor); n != 0 {
		t.Errorf("the janitor's advisory lock is held after the sweep (%d holders); want none", n)
	}
}
