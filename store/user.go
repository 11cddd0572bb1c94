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
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// User is a person who can log in. The password hash never leaves the
// package.
type User struct {
	Name      string
	Email     string // lower-case; empty when none is set
	CreatedAt time.Time
	UpdatedAt time.Time
}

type userRecord struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash"` // empty: signs in only through an identity provider
	Email        string    `json:"email,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ErrInvalidUser is returned for an empty user name or password, or a name
// that is not UTF-8 or has white space, ':' or a control character
// (bidirectional controls included).
var ErrInvalidUser = errors.New("invalid user name or password")

func validUserName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		// Bidirectional controls can make one name read as another in a
		// listing.
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// CreateUser adds a user with an argon2id hash of password.
// ErrAlreadyExists when the name is taken; ErrInvalidUser for an empty name
// or password or a name with white space or ':'.
func (s *Store) CreateUser(ctx context.Context, name, password string) error {
	if !validUserName(name) || password == "" {
		return ErrInvalidUser
	}
	if exists, err := s.UserExists(ctx, name); err != nil {
		return err
	} else if exists {
		return ErrAlreadyExists
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	v, err := json.Marshal(userRecord{Name: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return fmt.Errorf("store: encode user: %w", err)
	}
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketUsers)
		if b.Get([]byte(name)) != nil {
			return ErrAlreadyExists
		}
		return b.Put([]byte(name), v)
	})
}

// SetPassword replaces a user's password. ErrNotFound for an unknown user.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if password == "" {
		return ErrInvalidUser
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	return s.update(ctx, func(tx *wtx) error {
		rec, err := findUser(tx.tx, name)
		if err != nil {
			return err
		}
		rec.PasswordHash = hash
		rec.UpdatedAt = now
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("store: encode user: %w", err)
		}
		return tx.bucket(bucketUsers).Put([]byte(name), v)
	})
}

// DeleteUser removes a user, ends every grant whose subject is that user
// and every login session of theirs, and deletes the user's passkeys,
// consents, notes, linked identities, email address and upstream tokens.
// ErrNotFound for an unknown user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.update(ctx, func(tx *wtx) error {
		rec, err := findUser(tx.tx, name)
		if err != nil {
			return err
		}
		if err := tx.bucket(bucketUsers).Delete([]byte(name)); err != nil {
			return err
		}
		if err := deleteUserIdentities(tx, rec); err != nil {
			return err
		}
		if _, err := revokeIndexed(tx, bucketSubjectGrants, name); err != nil {
			return err
		}
		if _, err := deleteUserSessions(tx, name, ""); err != nil {
			return err
		}
		if err := deleteUserPasskeys(tx, name); err != nil {
			return err
		}
		if err := deletePrefix(tx.bucket(bucketConsents), []byte(name+sep)); err != nil {
			return err
		}
		return deletePrefix(tx.bucket(bucketNotes), []byte(name+sep))
	})
}

// ListUsers returns every user, sorted by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		return bucket(tx, bucketUsers).ForEach(func(_, v []byte) error {
			var rec userRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("store: decode user: %w", err)
			}
			out = append(out, User{Name: rec.Name, Email: rec.Email, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt})
			return nil
		})
	})
	return out, err // bbolt keys are sorted, so names are too
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bolt.Tx) error {
		n = bucket(tx, bucketUsers).Stats().KeyN
		return nil
	})
	return n, err
}

// UserExists reports whether a user of that name exists.
func (s *Store) UserExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok = bucket(tx, bucketUsers).Get([]byte(name)) != nil
		return nil
	})
	return ok, err
}

// Authenticate returns nil when password is the user's, and
// ErrBadCredentials otherwise. An unknown user, and a user without a
// password, cost one argon2id run too, so the answer takes the same time
// either way.
func (s *Store) Authenticate(ctx context.Context, name, password string) error {
	var hash string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := findUser(tx, name)
		if err != nil {
			return err
		}
		hash = rec.PasswordHash
		return nil
	})
	if errors.Is(err, ErrNotFound) || (err == nil && hash == "") {
		// An unknown user, or one without a password (signed up through
		// an identity provider), costs what a wrong password costs.
		burnPassword(password)
		return ErrBadCredentials
	}
	if err != nil {
		return err
	}
	ok, err := verifyPassword(hash, password)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadCredentials
	}
	return nil
}

// HasPassword reports whether the user has a password; a user created
// through an identity provider may have none. ErrNotFound for an unknown
// user.
func (s *Store) HasPassword(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rec, err := findUser(tx, name)
		if err != nil {
			return err
		}
		ok = rec.PasswordHash != ""
		return nil
	})
	return ok, err
}

func findUser(tx *bolt.Tx, name string) (*userRecord, error) {
	if name == "" || strings.Contains(name, sep) {
		return nil, ErrNotFound
	}
	v := bucket(tx, bucketUsers).Get([]byte(name))
	if v == nil {
		return nil, ErrNotFound
	}
	var rec userRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("store: decode user: %w", err)
	}
	return &rec, nil
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b wbucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
