package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Consent is a remembered decision of a user to let a client have scopes.
// Its fields match authz.Consent one for one.
type Consent struct {
	User         string
	ClientID     string
	Scopes       []string
	RedirectHost string
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero: never
}

type consentRecord struct {
	User         string    `json:"user"`
	ClientID     string    `json:"client_id"`
	Scopes       []string  `json:"scopes,omitempty"`
	RedirectHost string    `json:"redirect_host,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

func consentKey(user, clientID string) []byte { return []byte(user + sep + clientID) }

// PutConsent stores (or replaces) the consent of c.User for c.ClientID;
// CreatedAt defaults to now.
func (s *Store) PutConsent(ctx context.Context, c Consent) error {
	if err := CheckConsent(c); err != nil {
		return err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now().UTC()
	}
	v, err := json.Marshal(consentRecord(c))
	if err != nil {
		return fmt.Errorf("store: encode consent: %w", err)
	}
	return s.update(ctx, func(tx *wtx) error {
		return tx.bucket(bucketConsents).Put(consentKey(c.User, c.ClientID), v)
	})
}

// GetConsent returns the user's consent for the client, or ErrNotFound
// when there is none or it has expired.
func (s *Store) GetConsent(ctx context.Context, user, clientID string) (*Consent, error) {
	now := s.now()
	var c *Consent
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketConsents).Get(consentKey(user, clientID))
		if v == nil {
			return ErrNotFound
		}
		got, err := decodeConsent(v)
		if err != nil {
			return err
		}
		if got.expired(now) {
			return ErrNotFound
		}
		c = &got
		return nil
	})
	return c, err
}

// ListConsents returns the unexpired consents of user, or of every user
// when user is "", ordered by user and client id.
func (s *Store) ListConsents(ctx context.Context, user string) ([]Consent, error) {
	now := s.now()
	var prefix []byte
	if user != "" {
		prefix = []byte(user + sep)
	}
	var out []Consent
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		c := bucket(tx, bucketConsents).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			got, err := decodeConsent(v)
			if err != nil {
				return err
			}
			if !got.expired(now) {
				out = append(out, got)
			}
		}
		return nil
	})
	return out, err
}

// DeleteConsent forgets the user's consent for the client. ErrNotFound
// when there is none.
func (s *Store) DeleteConsent(ctx context.Context, user, clientID string) error {
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketConsents)
		k := consentKey(user, clientID)
		if b.Get(k) == nil {
			return ErrNotFound
		}
		return b.Delete(k)
	})
}

func decodeConsent(v []byte) (Consent, error) {
	var rec consentRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return Consent{}, fmt.Errorf("store: decode consent: %w", err)
	}
	return Consent(rec), nil
}

func (c Consent) expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}
