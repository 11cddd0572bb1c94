package mcp

import (
	"context"
	"errors"
	"time"
)

// ErrNoteNotFound is what a NotesStore returns for an id the owner has no
// note under.
var ErrNoteNotFound = errors.New("note not found")

// ErrUnavailable is what a NotesStore returns for a request it cannot
// serve now but may later (its disk is full, its database read-only or
// away); the tool call fails with a message that says so, and the store,
// not the tool, logs why. A Verifier's error wrapping it is answered 503
// with Retry-After.
var ErrUnavailable = errors.New("notes store temporarily unavailable")

// Note is one note of one owner.
type Note struct {
	ID        string
	Title     string
	Body      string
	Tags      []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NotesStore persists notes per owner. An owner is a user name or
// "client:<client_id>" for client-credentials tokens. No method ever returns
// a note of another owner.
type NotesStore interface {
	// SaveNote creates a note when n.ID is empty, and otherwise updates the
	// owner's note n.ID (ErrNoteNotFound when the owner has none).
	SaveNote(ctx context.Context, owner string, n Note) (Note, error)
	GetNote(ctx context.Context, owner, id string) (Note, error)
	ListNotes(ctx context.Context, owner string) ([]Note, error)
	// SearchNotes returns the notes whose title, body or tags contain every
	// word of query, case-insensitively.
	SearchNotes(ctx context.Context, owner, query string) ([]Note, error)
	DeleteNote(ctx context.Context, owner, id string) error
}
