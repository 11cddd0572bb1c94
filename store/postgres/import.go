package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcpd/mcpd/store"
)

// ErrNotEmpty is Import's answer for a database that holds records.
var ErrNotEmpty = errors.New("the PostgreSQL database is not empty")

// tables are every table of records, for Import's emptiness check.
var tables = []string{"secrets", "users", "clients", "consents", "notes", "tokens", "jtis", "successors",
	"sessions", "pending_authorizations", "webauthn_sessions", "passkeys", "identities", "upstream_tokens", "idp_states"}

// Import runs fn with a store.Sink that writes into one transaction, and
// commits it when fn succeeds, so a migration lands whole or not at all.
// It refuses, with ErrNotEmpty, a database that holds any record: a copy
// goes into an empty database, never over one in use. The tables stay
// locked against writers (a replica started too early) until it ends.
func (s *Store) Import(ctx context.Context, fn func(ctx context.Context, sink store.Sink) error) error {
	return s.update(ctx, func(ctx context.Context) error {
		q, err := s.q(ctx)
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, "LOCK TABLE "+strings.Join(tables, ", ")+" IN EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("postgres: import: %w", err)
		}
		for _, t := range tables {
			var any bool
			if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&any); err != nil {
				return fmt.Errorf("postgres: import: %w", err)
			}
			if any {
				return fmt.Errorf("%w (table %s has rows); migrate into a new, empty database", ErrNotEmpty, t)
			}
		}
		return fn(ctx, importer{s})
	})
}

// importer is the store.Sink of Import: every method writes in the
// transaction its context carries, keeping each record as it was.
type importer struct{ s *Store }

var _ store.Sink = importer{}

func (im importer) exec(ctx context.Context, sql string, args ...any) error {
	q, err := im.s.q(ctx)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, sql, args...)
	return err
}

func (im importer) ImportSecret(ctx context.Context, name string, value []byte) error {
	return im.exec(ctx, "INSERT INTO secrets (name, value) VALUES ($1, $2)", name, value)
}

func (im importer) ImportUser(ctx context.Context, u store.User, passwordHash string) error {
	if !textOK(u.Name) {
		return fmt.Errorf("postgres: import: user name %q is not UTF-8 text", u.Name)
	}
	data, err := store.EncodeUser(u, passwordHash)
	if err != nil {
		return err
	}
	var email *string
	if u.Email != "" {
		email = &u.Email
	}
	return im.exec(ctx, "INSERT INTO users (name, email, data) VALUES ($1, $2, $3)", u.Name, email, data)
}

func (im importer) ImportClient(ctx context.Context, c *store.Client) error {
	if !textOK(c.ID) {
		return fmt.Errorf("postgres: import: client id %q is not UTF-8 text", c.ID)
	}
	data, err := store.EncodeClient(c)
	if err != nil {
		return err
	}
	return im.exec(ctx, "INSERT INTO clients (id, source, created_at, activated_at, data) VALUES ($1, $2, $3, $4, $5)",
		c.ID, c.Source, c.CreatedAt, nullTime(c.ActivatedAt), data)
}

func (im importer) ImportConsent(ctx context.Context, c store.Consent) error {
	data, err := store.EncodeConsent(c)
	if err != nil {
		return err
	}
	return im.exec(ctx, "INSERT INTO consents (user_name, client_id, expires_at, data) VALUES ($1, $2, $3, $4)",
		c.User, c.ClientID, nullTime(c.ExpiresAt), data)
}

func (im importer) ImportNote(ctx context.Context, owner string, n store.Note) error {
	data, err := store.EncodeNote(n)
	if err != nil {
		return err
	}
	return im.exec(ctx, "INSERT INTO notes (owner, id, data) VALUES ($1, $2, $3)", owner, n.ID, data)
}

func (im importer) ImportToken(ctx context.Context, t store.ExportedToken) error {
	kind, ok := map[store.TokenKind]string{
		store.CodeToken: kindCode, store.AccessToken: kindAccess, store.RefreshToken: kindRefresh, store.PKCEToken: kindPKCE,
	}[t.Kind]
	if !ok {
		return fmt.Errorf("postgres: import: unknown token kind %q", t.Kind)
	}
	r := t.Request
	return im.exec(ctx, `
		INSERT INTO tokens (kind, key, request_id, client_id, subject, active, expires_at, seq, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		kind, t.Key, r.ID, r.ClientID, r.Subject, t.Active, nullTime(r.ExpiresAt), int64(t.Seq), r.JSON)
}

func (im importer) ImportJTI(ctx context.Context, key []byte, expiresAt time.Time) error {
	return im.exec(ctx, "INSERT INTO jtis (key, expires_at) VALUES ($1, $2)", key, expiresAt)
}

func (im importer) ImportSuccessor(ctx context.Context, key, sealed []byte, expiresAt time.Time) error {
	return im.exec(ctx, "INSERT INTO successors (key, sealed, expires_at) VALUES ($1, $2, $3)", key, sealed, expiresAt)
}
