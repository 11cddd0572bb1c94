package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/mcpd/mcpd/store"
)

// PutRefreshSuccessor keeps, until expiresAt, the sealed token response
// that rotating the refresh token oldSignature produced. It is keyed by the
// signature's hash; sealed is opaque.
func (s *Store) PutRefreshSuccessor(ctx context.Context, oldSignature string, sealed []byte, expiresAt time.Time) error {
	if expiresAt.IsZero() {
		return errors.New("postgres: a refresh successor needs an expiry")
	}
	return s.deferExec(ctx, `
		INSERT INTO successors (key, sealed, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at`,
		store.SigHash(oldSignature), sealed, expiresAt)
}

// GetRefreshSuccessor returns the sealed successor of oldSignature, or
// store.ErrNotFound when there is none or it has expired.
func (s *Store) GetRefreshSuccessor(ctx context.Context, oldSignature string) ([]byte, error) {
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	err = q.QueryRow(ctx, "SELECT sealed FROM successors WHERE key = $1 AND expires_at > $2",
		store.SigHash(oldSignature), s.now()).Scan(&sealed)
	if err != nil {
		return nil, notFound(err, store.ErrNotFound)
	}
	return sealed, nil
}

// ClientAssertionJWTValid returns fosite.ErrJTIKnown when jti was seen and
// has not expired, and nil otherwise.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	var known bool
	err = q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM jtis WHERE key = $1 AND expires_at > $2)",
		store.SigHash(jti), s.now()).Scan(&known)
	if err != nil {
		return err
	}
	if known {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT records jti until exp; fosite.ErrJTIKnown when it
// is already recorded and unexpired, decided in one statement so two
// replicas cannot both accept it. The janitor removes expired ones.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `
		INSERT INTO jtis (key, expires_at) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE jtis.expires_at <= $3`,
		store.SigHash(jti), exp, s.now())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// RememberProofJTI records the DPoP proof key (the proof's key thumbprint
// and jti, as the caller joins them) until exp, so that a replay of the
// proof is refused by every replica. It returns store.ErrAlreadyExists,
// and changes nothing, when the key is recorded already and has not
// expired, decided in one statement. Proof records share the jtis table
// with client-assertion JTIs under keys of their own (store.ProofJTIKey).
func (s *Store) RememberProofJTI(ctx context.Context, key string, exp time.Time) error {
	if key == "" || exp.IsZero() {
		return errors.New("postgres: a proof jti needs a key and an expiry")
	}
	q, err := s.q(ctx)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `
		INSERT INTO jtis (key, expires_at) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE jtis.expires_at <= $3`,
		store.ProofJTIKey(key), exp, s.now())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

// ProofJTIKnown reports whether the DPoP proof key is recorded and has not
// expired.
func (s *Store) ProofJTIKnown(ctx context.Context, key string) (bool, error) {
	q, err := s.q(ctx)
	if err != nil {
		return false, err
	}
	var known bool
	err = q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM jtis WHERE key = $1 AND expires_at > $2)",
		store.ProofJTIKey(key), s.now()).Scan(&known)
	return known, err
}

// Secret returns the random key stored under name, creating it with size
// bytes from crypto/rand on first use. Every later call, in any process on
// the database, returns the same bytes (whatever size it asks for), so
// every replica signs and checks tokens with one key.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	if name == "" || size <= 0 || !textOK(name) {
		return nil, fmt.Errorf("postgres: secret needs a name and a positive size")
	}
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("postgres: read random secret: %w", err)
	}
	q, err := s.q(ctx)
	if err != nil {
		return nil, err
	}
	// The first writer wins; everyone reads what it wrote. A writer that
	// lost the race to a transaction that had not committed when its
	// statement began sees neither row: the next statement sees it.
	for range 3 {
		var out []byte
		err = q.QueryRow(ctx, `
			WITH created AS (
				INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value
			)
			SELECT value FROM created UNION ALL SELECT value FROM secrets WHERE name = $1`,
			name, fresh).Scan(&out)
		if !errors.Is(err, pgx.ErrNoRows) {
			return out, err
		}
	}
	return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
}
