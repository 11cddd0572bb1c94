package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/store"
)

// firstUserName is the user serve creates on a store that has none.
const firstUserName = "admin"

// firstUser is the creation of the first user on a first start. Hashing its
// password with argon2id (19 MiB, 2 passes) takes about 100 ms, more than
// the rest of start-up together, so serve creates the user alongside
// serving instead of before it, and everything that needs users waits for
// it: the login form (through firstUserStorage) and every admin socket
// call (through gate). Nothing else reads users.
//
// The user is written in one durable transaction, so a crash before it
// commits leaves a store without users, and the next start creates the
// first user again.
type firstUser struct {
	create func(ctx context.Context) error // nil when the store has users
	logger *slog.Logger
	done   chan struct{} // closed when create has returned
	err    error         // what create returned; read after done
}

// newFirstUser returns the pending creation of the first user by create,
// to be started with start; a nil create means there is nothing to create,
// and the result is done already.
func newFirstUser(create func(ctx context.Context) error, logger *slog.Logger) *firstUser {
	f := &firstUser{create: create, logger: logger, done: make(chan struct{})}
	if create == nil {
		close(f.done)
	}
	return f
}

// start runs the creation in its own goroutine. It is not cancelled when
// ctx is: the banner may already have shown the password, so a graceful
// shutdown waits for the user rather than dropping it.
func (f *firstUser) start(ctx context.Context) {
	if f.create == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(f.done)
		if err := f.create(ctx); err != nil {
			f.err = fmt.Errorf("create the first user: %w", err)
		}
	}()
}

// wait blocks until the first user exists (nil), its creation failed (that
// error), or ctx ends (ctx's error). what names the waiter in the log.
func (f *firstUser) wait(ctx context.Context, what string) error {
	select {
	case <-f.done:
		return f.err
	default:
	}
	f.logger.Debug("waiting for the first user to be created", "for", what)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gate holds every request to next until the first user exists, so the
// admin socket never answers from a store that is still being set up.
func (f *firstUser) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f.wait(r.Context(), "admin "+r.URL.Path); err != nil {
			writeAdminError(w, http.StatusServiceUnavailable, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// firstUserStorage is authz's storage with the user checks held until the
// first user exists: a login that arrives while the first user is being
// created succeeds once it is, instead of failing as an unknown user.
type firstUserStorage struct {
	authz.Storage
	first *firstUser
}

// Authenticate checks the password once the first user exists.
func (s firstUserStorage) Authenticate(ctx context.Context, name, password string) error {
	if err := s.first.wait(ctx, "login"); err != nil {
		return err
	}
	return s.Storage.Authenticate(ctx, name, password)
}

// UserExists answers once the first user exists.
func (s firstUserStorage) UserExists(ctx context.Context, name string) (bool, error) {
	if err := s.first.wait(ctx, "session"); err != nil {
		return false, err
	}
	return s.Storage.UserExists(ctx, name)
}

// planFirstUser decides, when the store has no user, the password of the
// first user: MCPD_INITIAL_PASSWORD, --initial-password-file, or a random
// one, which it records in s.initialPassword for the banner. It returns the
// creation to run (nil when the store has users); the slow part, hashing
// the password, happens only when that runs.
func (s *server) planFirstUser(ctx context.Context, getenv func(string) string) (func(ctx context.Context) error, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	pw := getenv("MCPD_INITIAL_PASSWORD")
	if s.cfg.InitialPasswordFile != "" {
		b, err := os.ReadFile(s.cfg.InitialPasswordFile)
		if err != nil {
			return nil, usageError(fmt.Sprintf("invalid --initial-password-file: %v", err))
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw == "" {
		b := make([]byte, 15)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		pw = base64.RawURLEncoding.EncodeToString(b)
		s.initialPassword = pw
	}
	st := s.store
	generated := s.initialPassword != ""
	return func(ctx context.Context) error {
		err := st.CreateUser(ctx, firstUserName, pw)
		if errors.Is(err, store.ErrAlreadyExists) {
			// Another replica on the same database created it first.
			if generated {
				s.logger.Warn("another replica created the first user first: the password printed above is not admin's; use that replica's, or set MCPD_INITIAL_PASSWORD on every replica", "user", firstUserName)
			} else {
				s.logger.Info("the first user exists: another replica created it", "user", firstUserName)
			}
			return nil
		}
		if err != nil {
			return err
		}
		s.logger.Info("created the first user", "user", firstUserName)
		return nil
	}, nil
}
