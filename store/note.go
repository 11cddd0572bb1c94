package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Note is one note of one owner (a user name, or "client:<id>" for a
// client-credentials principal). Its fields match mcp.Note one for one.
type Note struct {
	ID        string
	Title     string
	Body      string
	Tags      []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type noteRecord struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Tags      []string  `json:"tags,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func noteKey(owner, id string) []byte { return []byte(owner + sep + id) }

func validOwner(owner string) error {
	if owner == "" || strings.Contains(owner, sep) {
		return errors.New("store: a note needs an owner")
	}
	return nil
}

// SaveNote creates a note with a fresh random id when n.ID is empty, and
// otherwise replaces the owner's note n.ID, keeping its CreatedAt
// (ErrNotFound when the owner has no such note, whoever else might). It
// returns the note as stored.
func (s *Store) SaveNote(ctx context.Context, owner string, n Note) (Note, error) {
	if err := validOwner(owner); err != nil {
		return Note{}, err
	}
	now := s.now().UTC()
	create := n.ID == ""
	if create {
		id, err := newNoteID()
		if err != nil {
			return Note{}, err
		}
		n.ID = id
		n.CreatedAt = now
	} else if strings.Contains(n.ID, sep) {
		return Note{}, ErrNotFound
	}
	n.UpdatedAt = now
	var saved Note
	err := s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketNotes)
		k := noteKey(owner, n.ID)
		out := n
		old := b.Get(k)
		switch {
		case create && old != nil:
			return ErrAlreadyExists // a random id collided; never overwrite
		case !create && old == nil:
			return ErrNotFound
		case !create:
			prev, err := decodeNote(old)
			if err != nil {
				return err
			}
			out.CreatedAt = prev.CreatedAt
		}
		v, err := json.Marshal(noteRecord(out))
		if err != nil {
			return fmt.Errorf("store: encode note: %w", err)
		}
		saved = out
		return b.Put(k, v)
	})
	if err != nil {
		return Note{}, err
	}
	return saved, nil
}

// GetNote returns the owner's note id, or ErrNotFound.
func (s *Store) GetNote(ctx context.Context, owner, id string) (Note, error) {
	var n Note
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if validOwner(owner) != nil || strings.Contains(id, sep) {
			return ErrNotFound
		}
		v := bucket(tx, bucketNotes).Get(noteKey(owner, id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		n, err = decodeNote(v)
		return err
	})
	return n, err
}

// ListNotes returns the owner's notes, most recently updated first.
func (s *Store) ListNotes(ctx context.Context, owner string) ([]Note, error) {
	return s.SearchNotes(ctx, owner, "")
}

// SearchNotes returns the owner's notes in which every word of query
// appears, case-insensitively, in the title, the body or a tag; most
// recently updated first. An empty query matches every note.
func (s *Store) SearchNotes(ctx context.Context, owner, query string) ([]Note, error) {
	if err := validOwner(owner); err != nil {
		return nil, err
	}
	words := strings.Fields(strings.ToLower(query))
	prefix := []byte(owner + sep)
	var out []Note
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		c := bucket(tx, bucketNotes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n, err := decodeNote(v)
			if err != nil {
				return err
			}
			if n.matches(words) {
				out = append(out, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].UpdatedAt.Equal(out[j].UpdatedAt) {
			return out[i].UpdatedAt.After(out[j].UpdatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteNote deletes the owner's note id; ErrNotFound when there is none.
func (s *Store) DeleteNote(ctx context.Context, owner, id string) error {
	if validOwner(owner) != nil || strings.Contains(id, sep) {
		return ErrNotFound
	}
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketNotes)
		k := noteKey(owner, id)
		if b.Get(k) == nil {
			return ErrNotFound
		}
		return b.Delete(k)
	})
}

func (n Note) matches(words []string) bool {
	if len(words) == 0 {
		return true
	}
	text := strings.ToLower(n.Title + "\n" + n.Body + "\n" + strings.Join(n.Tags, "\n"))
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

func decodeNote(v []byte) (Note, error) {
	var rec noteRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return Note{}, fmt.Errorf("store: decode note: %w", err)
	}
	return Note(rec), nil
}

// newNoteID returns 16 random bytes in lower-case base32 (26 characters).
func newNoteID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("store: read random id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}
