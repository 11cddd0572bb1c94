package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	bolt "go.etcd.io/bbolt"
)

// Identities is what upstream identity providers need of a store: users
// known by email, identities linked to users, the sealed upstream tokens of
// users, and the records of sign-ins in progress. Every backend implements
// it; storetest.RunIdentities states its rules. DeleteUser deletes a
// user's identities, email and upstream tokens with the user.
type Identities interface {
	CreateExternalUser(ctx context.Context, name, email string) error // ErrAlreadyExists, ErrInvalidUser, ErrInvalidEmail
	SetUserEmail(ctx context.Context, name, email string) error       // ErrNotFound, ErrAlreadyExists, ErrInvalidEmail
	LookupUserByEmail(ctx context.Context, email string) (string, error)

	LinkIdentity(ctx context.Context, id Identity) error // ErrAlreadyExists, ErrNotFound (user)
	LookupIdentity(ctx context.Context, issuer, subject string) (Identity, error)
	ListIdentities(ctx context.Context, user string) ([]Identity, error)
	UnlinkIdentities(ctx context.Context, user, provider string) (int, error) // ErrNotFound (user)

	PutUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error // ErrNotFound (user)
	GetUpstreamToken(ctx context.Context, user, provider string) ([]byte, error)
	DeleteUpstreamToken(ctx context.Context, user, provider string) error

	PutIDPState(ctx context.Context, state string, data []byte, expiresAt time.Time) error // ErrAlreadyExists
	TakeIDPState(ctx context.Context, state string) ([]byte, error)
}

var _ Identities = (*Store)(nil)

// Identity links a person's account at an upstream identity provider (the
// provider's issuer and its subject for the person) to an mcpd user.
type Identity struct {
	Issuer    string // the provider's issuer, e.g. https://accounts.google.com
	Subject   string // the provider's stable id of the person
	Provider  string // the name of the configured provider that linked it
	User      string // the mcpd user
	Email     string // the email address the provider gave at linking
	CreatedAt time.Time
}

type identityRecord struct {
	Issuer    string    `json:"iss"`
	Subject   string    `json:"sub"`
	Provider  string    `json:"provider"`
	User      string    `json:"user"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrInvalidEmail is returned for an email address that is not one
// (empty, no or several @, white space or control characters).
var ErrInvalidEmail = errors.New("invalid email address")

// NormalizeEmail returns the address in the form the store compares and
// keeps it: trimmed, with the ASCII letters A-Z in lower case.
// ErrInvalidEmail when it is not an address.
//
// Only ASCII is folded: Unicode lower-casing maps other characters onto
// ASCII ones (the Kelvin sign K onto k), so an address a provider vouches
// for, "\u212Aate@corp.example", would otherwise match kate@corp.example
// and sign its holder in as kate. Every backend compares the result byte
// for byte.
func NormalizeEmail(email string) (string, error) {
	e := asciiLower(strings.TrimSpace(email))
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(e) > 254 {
		return "", ErrInvalidEmail
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' {
			return "", ErrInvalidEmail
		}
	}
	return e, nil
}

func identityKey(issuer, subject string) []byte { return []byte(issuer + sep + subject) }

func validIdentityKey(issuer, subject string) bool {
	return issuer != "" && subject != "" && !strings.Contains(issuer, sep) && !strings.Contains(subject, sep)
}

// CreateExternalUser adds a user who has no password and signs in only
// through an identity provider, with email as the user's address.
// ErrAlreadyExists when the name or the email is taken; ErrInvalidUser or
// ErrInvalidEmail for a bad name or address.
func (s *Store) CreateExternalUser(ctx context.Context, name, email string) error {
	if !validUserName(name) {
		return ErrInvalidUser
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	v, err := json.Marshal(userRecord{Name: name, Email: e, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return fmt.Errorf("store: encode user: %w", err)
	}
	return s.update(ctx, func(tx *wtx) error {
		users, emails := tx.bucket(bucketUsers), tx.bucket(bucketUserEmails)
		if users.Get([]byte(name)) != nil || emails.Get([]byte(e)) != nil {
			return ErrAlreadyExists
		}
		if err := users.Put([]byte(name), v); err != nil {
			return err
		}
		return emails.Put([]byte(e), []byte(name))
	})
}

// SetUserEmail sets the email address of a user; "" removes it. An address
// belongs to at most one user: ErrAlreadyExists when another user has it.
// ErrNotFound for an unknown user, ErrInvalidEmail for a bad address.
func (s *Store) SetUserEmail(ctx context.Context, name, email string) error {
	var e string
	if strings.TrimSpace(email) != "" {
		var err error
		if e, err = NormalizeEmail(email); err != nil {
			return err
		}
	}
	now := s.now().UTC()
	return s.update(ctx, func(tx *wtx) error {
		rec, err := findUser(tx.tx, name)
		if err != nil {
			return err
		}
		emails := tx.bucket(bucketUserEmails)
		if e != "" {
			if owner := emails.Get([]byte(e)); owner != nil && string(owner) != name {
				return ErrAlreadyExists
			}
		}
		if rec.Email != "" && rec.Email != e {
			if err := emails.Delete([]byte(rec.Email)); err != nil {
				return err
			}
		}
		if e != "" {
			if err := emails.Put([]byte(e), []byte(name)); err != nil {
				return err
			}
		}
		rec.Email = e
		rec.UpdatedAt = now
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("store: encode user: %w", err)
		}
		return tx.bucket(bucketUsers).Put([]byte(name), v)
	})
}

// LookupUserByEmail returns the name of the user whose address is email
// (compared without regard to case). ErrNotFound when no user has it.
func (s *Store) LookupUserByEmail(ctx context.Context, email string) (string, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return "", ErrNotFound
	}
	var name string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketUserEmails).Get([]byte(e))
		if v == nil {
			return ErrNotFound
		}
		name = string(v)
		return nil
	})
	return name, err
}

// LinkIdentity links id.Issuer and id.Subject to the user id.User.
// ErrAlreadyExists when that identity is linked already (to anyone);
// ErrNotFound when the user does not exist. CreatedAt defaults to now.
func (s *Store) LinkIdentity(ctx context.Context, id Identity) error {
	if err := CheckIdentity(id); err != nil {
		return err
	}
	if id.CreatedAt.IsZero() {
		id.CreatedAt = s.now().UTC()
	}
	v, err := json.Marshal(identityRecord(id))
	if err != nil {
		return fmt.Errorf("store: encode identity: %w", err)
	}
	key := identityKey(id.Issuer, id.Subject)
	return s.update(ctx, func(tx *wtx) error {
		if _, err := findUser(tx.tx, id.User); err != nil {
			return err
		}
		ids := tx.bucket(bucketIdentities)
		if ids.Get(key) != nil {
			return ErrAlreadyExists
		}
		if err := ids.Put(key, v); err != nil {
			return err
		}
		return tx.bucket(bucketUserIdentities).Put([]byte(id.User+sep+string(key)), nil)
	})
}

// LookupIdentity returns the identity of subject at issuer. ErrNotFound
// when it is linked to no user.
func (s *Store) LookupIdentity(ctx context.Context, issuer, subject string) (Identity, error) {
	if !validIdentityKey(issuer, subject) {
		return Identity{}, ErrNotFound
	}
	var id Identity
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketIdentities).Get(identityKey(issuer, subject))
		if v == nil {
			return ErrNotFound
		}
		var err error
		id, err = DecodeIdentity(v)
		return err
	})
	return id, err
}

// ListIdentities returns the identities linked to user, sorted by issuer
// and subject; none for an unknown user.
func (s *Store) ListIdentities(ctx context.Context, user string) ([]Identity, error) {
	var out []Identity
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		if user == "" || strings.Contains(user, sep) {
			return nil
		}
		ids := bucket(tx, bucketIdentities)
		prefix := []byte(user + sep)
		c := bucket(tx, bucketUserIdentities).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			v := ids.Get(k[len(prefix):])
			if v == nil {
				continue // a dangling index entry
			}
			var rec identityRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("store: decode identity: %w", err)
			}
			out = append(out, Identity(rec))
		}
		return nil
	})
	return out, err
}

// UnlinkIdentities deletes the identities linked to user through the
// provider named provider, with the user's upstream token at it, and
// returns how many identities it deleted. The user keeps everything else.
// ErrNotFound for an unknown user.
func (s *Store) UnlinkIdentities(ctx context.Context, user, provider string) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *wtx) error {
		n = 0
		if _, err := findUser(tx.tx, user); err != nil {
			return err
		}
		ids, index := tx.bucket(bucketIdentities), tx.bucket(bucketUserIdentities)
		prefix := []byte(user + sep)
		var drop [][]byte
		c := index.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			v := ids.Get(k[len(prefix):])
			var rec identityRecord
			if v != nil {
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("store: decode identity: %w", err)
				}
			}
			if v == nil || rec.Provider == provider {
				drop = append(drop, bytes.Clone(k))
			}
		}
		for _, k := range drop {
			if ids.Get(k[len(prefix):]) != nil {
				n++
				if err := ids.Delete(k[len(prefix):]); err != nil {
					return err
				}
			}
			if err := index.Delete(k); err != nil {
				return err
			}
		}
		if strings.Contains(provider, sep) {
			return nil
		}
		tokens := tx.bucket(bucketUpstreamTokens)
		if k := upstreamTokenKey(user, provider); tokens.Get(k) != nil {
			return tokens.Delete(k)
		}
		return nil
	})
	return n, err
}

func upstreamTokenKey(user, provider string) []byte { return []byte(user + sep + provider) }

// PutUpstreamToken keeps sealed, the user's token at the identity provider
// provider, replacing the one kept before. The store treats sealed as
// opaque bytes; the caller seals it. ErrNotFound when the user does not
// exist, so a token never outlives its user.
func (s *Store) PutUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error {
	if user == "" || provider == "" || strings.Contains(user, sep) || strings.Contains(provider, sep) || len(sealed) == 0 {
		return errors.New("store: an upstream token needs a user, a provider and sealed bytes")
	}
	return s.update(ctx, func(tx *wtx) error {
		if _, err := findUser(tx.tx, user); err != nil {
			return err
		}
		return tx.bucket(bucketUpstreamTokens).Put(upstreamTokenKey(user, provider), bytes.Clone(sealed))
	})
}

// GetUpstreamToken returns the sealed token PutUpstreamToken kept for the
// user at provider. ErrNotFound when there is none.
func (s *Store) GetUpstreamToken(ctx context.Context, user, provider string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := bucket(tx, bucketUpstreamTokens).Get(upstreamTokenKey(user, provider))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// DeleteUpstreamToken forgets the user's token at provider; forgetting
// one that is not kept is not an error.
func (s *Store) DeleteUpstreamToken(ctx context.Context, user, provider string) error {
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketUpstreamTokens)
		k := upstreamTokenKey(user, provider)
		if b.Get(k) == nil {
			return nil
		}
		return b.Delete(k)
	})
}

// PutIDPState keeps data, the server's record of a sign-in started at an
// identity provider, under state until expiresAt. The store keys it by the
// hash of state and treats data as opaque bytes. ErrAlreadyExists when the
// state is in use.
func (s *Store) PutIDPState(ctx context.Context, state string, data []byte, expiresAt time.Time) error {
	if state == "" || expiresAt.IsZero() {
		return errors.New("store: a sign-in state needs a value and an expiry")
	}
	v := append(expiryPrefix(expiresAt), data...)
	key := sighash(state)
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketIDPStates)
		if b.Get(key) != nil {
			return ErrAlreadyExists
		}
		return b.Put(key, v)
	})
}

// TakeIDPState returns the data kept under state and deletes it, so a
// state is used at most once. ErrNotFound when there is none, it was taken
// already, or it has expired.
func (s *Store) TakeIDPState(ctx context.Context, state string) ([]byte, error) {
	now := s.now()
	key := sighash(state)
	var out []byte
	live := false
	err := s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketIDPStates)
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		if live = !isExpired(v, now); live {
			out = bytes.Clone(v[8:])
		}
		return b.Delete(key)
	})
	if err == nil && !live {
		return nil, ErrNotFound
	}
	return out, err
}

// deleteUserIdentities removes the user's identities, email address and
// upstream tokens: the part of DeleteUser that belongs to identity
// providers.
func deleteUserIdentities(tx *wtx, rec *userRecord) error {
	prefix := []byte(rec.Name + sep)
	ids := tx.bucket(bucketIdentities)
	var keys [][]byte
	c := tx.bucket(bucketUserIdentities).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := ids.Delete(k[len(prefix):]); err != nil {
			return err
		}
	}
	if err := deletePrefix(tx.bucket(bucketUserIdentities), prefix); err != nil {
		return err
	}
	if rec.Email != "" {
		emails := tx.bucket(bucketUserEmails)
		if owner := emails.Get([]byte(rec.Email)); string(owner) == rec.Name {
			if err := emails.Delete([]byte(rec.Email)); err != nil {
				return err
			}
		}
	}
	return deletePrefix(tx.bucket(bucketUpstreamTokens), prefix)
}

// asciiLower maps A-Z to a-z and leaves every other character alone.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
