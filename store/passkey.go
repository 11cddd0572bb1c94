package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Passkey is a WebAuthn credential a user registered: its public key and
// what sign-in checks of it. The private key never leaves the
// authenticator, so the record lets no one sign in.
type Passkey struct {
	ID                []byte // the credential ID the authenticator chose
	User              string
	Name              string // what the user calls it
	PublicKey         []byte // COSE_Key
	SignCount         uint32
	AAGUID            []byte
	Transports        []string
	UserPresent       bool
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
	AttestationType   string
	AttestationFormat string
	CreatedAt         time.Time
	LastUsedAt        time.Time // zero: never used
}

type passkeyRecord struct {
	ID                []byte    `json:"id"`
	User              string    `json:"user"`
	Name              string    `json:"name"`
	PublicKey         []byte    `json:"public_key"`
	SignCount         uint32    `json:"sign_count"`
	AAGUID            []byte    `json:"aaguid,omitempty"`
	Transports        []string  `json:"transports,omitempty"`
	UserPresent       bool      `json:"user_present"`
	UserVerified      bool      `json:"user_verified"`
	BackupEligible    bool      `json:"backup_eligible"`
	BackupState       bool      `json:"backup_state"`
	AttestationType   string    `json:"attestation_type,omitempty"`
	AttestationFormat string    `json:"attestation_format,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	LastUsedAt        time.Time `json:"last_used_at"`
}

// maxCredentialID is the longest credential ID WebAuthn allows.
const maxCredentialID = 1023

func userPasskeyKey(user string, id []byte) []byte {
	return append([]byte(user+sep), id...)
}

// CreatePasskey stores a new passkey of p.User. ErrNotFound when there is
// no such user; ErrAlreadyExists when a passkey of that ID exists (of any
// user). CreatedAt defaults to now.
func (s *Store) CreatePasskey(ctx context.Context, p Passkey) error {
	if err := CheckPasskey(p); err != nil {
		return err
	}
	p.CreatedAt = utcOrNow(p.CreatedAt, s.now)
	p.LastUsedAt = p.LastUsedAt.UTC()
	v, err := json.Marshal(passkeyRecord(p))
	if err != nil {
		return fmt.Errorf("store: encode passkey: %w", err)
	}
	return s.update(ctx, func(tx *wtx) error {
		if _, err := findUser(tx.tx, p.User); err != nil {
			return err
		}
		b := tx.bucket(bucketPasskeys)
		if b.Get(p.ID) != nil {
			return ErrAlreadyExists
		}
		if err := b.Put(p.ID, v); err != nil {
			return err
		}
		return tx.bucket(bucketUserPasskeys).Put(userPasskeyKey(p.User, p.ID), nil)
	})
}

// GetPasskey returns the passkey of a credential ID, or ErrNotFound.
func (s *Store) GetPasskey(ctx context.Context, id []byte) (Passkey, error) {
	var out Passkey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = findPasskey(tx, id)
		return err
	})
	return out, err
}

// ListPasskeys returns the passkeys of user, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, user string) ([]Passkey, error) {
	var out []Passkey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		if user == "" || strings.Contains(user, sep) {
			return nil
		}
		prefix := []byte(user + sep)
		c := bucket(tx, bucketUserPasskeys).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			p, err := findPasskey(tx, k[len(prefix):])
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Passkey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return out, err
}

// UpdatePasskey changes the passkey of id with fn, which may change
// anything but its ID and user (after a sign-in: the counter, the flags,
// the time of last use; or its name). ErrNotFound when there is none.
func (s *Store) UpdatePasskey(ctx context.Context, id []byte, fn func(*Passkey) error) error {
	return s.update(ctx, func(tx *wtx) error {
		p, err := findPasskey(tx.tx, id)
		if err != nil {
			return err
		}
		user := p.User
		if err := fn(&p); err != nil {
			return err
		}
		p.ID, p.User = bytes.Clone(id), user
		p.CreatedAt, p.LastUsedAt = p.CreatedAt.UTC(), p.LastUsedAt.UTC()
		v, err := json.Marshal(passkeyRecord(p))
		if err != nil {
			return fmt.Errorf("store: encode passkey: %w", err)
		}
		return tx.bucket(bucketPasskeys).Put(id, v)
	})
}

// DeletePasskey removes the passkey id of user. ErrNotFound when user has
// no such passkey, so one user cannot remove another's.
func (s *Store) DeletePasskey(ctx context.Context, user string, id []byte) error {
	return s.update(ctx, func(tx *wtx) error {
		p, err := findPasskey(tx.tx, id)
		if err != nil {
			return err
		}
		if p.User != user {
			return ErrNotFound
		}
		return deletePasskey(tx, p)
	})
}

// CountPasskeys returns how many passkeys each user has; users without
// one are absent.
func (s *Store) CountPasskeys(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		clear(out)
		return bucket(tx, bucketUserPasskeys).ForEach(func(k, _ []byte) error {
			if i := bytes.Index(k, []byte(sep)); i > 0 {
				out[string(k[:i])]++
			}
			return nil
		})
	})
	return out, err
}

func findPasskey(tx *bolt.Tx, id []byte) (Passkey, error) {
	if len(id) == 0 {
		return Passkey{}, ErrNotFound
	}
	v := bucket(tx, bucketPasskeys).Get(id)
	if v == nil {
		return Passkey{}, ErrNotFound
	}
	return DecodePasskey(v)
}

func deletePasskey(tx *wtx, p Passkey) error {
	if err := tx.bucket(bucketPasskeys).Delete(p.ID); err != nil {
		return err
	}
	return tx.bucket(bucketUserPasskeys).Delete(userPasskeyKey(p.User, p.ID))
}

// deleteUserPasskeys removes every passkey of user.
func deleteUserPasskeys(tx *wtx, user string) error {
	prefix := []byte(user + sep)
	var ids [][]byte
	c := tx.bucket(bucketUserPasskeys).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, bytes.Clone(k[len(prefix):]))
	}
	for _, id := range ids {
		if err := tx.bucket(bucketPasskeys).Delete(id); err != nil {
			return err
		}
		if err := tx.bucket(bucketUserPasskeys).Delete(userPasskeyKey(user, id)); err != nil {
			return err
		}
	}
	return nil
}

// PutWebAuthnSession keeps the server side of a WebAuthn ceremony between
// its begin and its finish: data is opaque to the store. When max or more
// are kept, expired ones and then the oldest make room, as for sessions.
func (s *Store) PutWebAuthnSession(ctx context.Context, id string, data []byte, expiresAt time.Time, max int) error {
	if id == "" || expiresAt.IsZero() {
		return errors.New("store: a WebAuthn session needs an id and an expiry")
	}
	v := append(expiryPrefix(expiresAt), data...)
	now := s.now()
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketWebAuthnSessions)
		if b.Get([]byte(id)) == nil {
			if err := makeRoom(b, max, now); err != nil {
				return err
			}
		}
		return b.Put([]byte(id), v)
	})
}

// TakeWebAuthnSession removes the ceremony data of id and returns it, so a
// ceremony finishes at most once. ErrNotFound when there is none or it has
// expired.
func (s *Store) TakeWebAuthnSession(ctx context.Context, id string) ([]byte, error) {
	now := s.now()
	var data []byte
	err := s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketWebAuthnSessions)
		v := b.Get([]byte(id))
		if len(v) < 8 || isExpired(v, now) {
			return ErrNotFound
		}
		data = bytes.Clone(v[8:])
		return b.Delete([]byte(id))
	})
	return data, err
}
