package mcp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memNotes is an in-memory NotesStore for tests, keyed by owner.
type memNotes struct {
	mu    sync.Mutex
	next  int
	now   func() time.Time
	notes map[string]map[string]Note // owner → id → note
}

func newMemNotes() *memNotes {
	return &memNotes{now: time.Now, notes: make(map[string]map[string]Note)}
}

func (m *memNotes) SaveNote(_ context.Context, owner string, n Note) (Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mine := m.notes[owner]
	if mine == nil {
		mine = make(map[string]Note)
		m.notes[owner] = mine
	}
	now := m.now()
	if n.ID == "" {
		m.next++
		n.ID = fmt.Sprintf("n%d", m.next)
		n.CreatedAt = now
	} else {
		old, ok := mine[n.ID]
		if !ok {
			return Note{}, ErrNoteNotFound
		}
		n.CreatedAt = old.CreatedAt
	}
	n.UpdatedAt = now
	n.Tags = slices.Clone(n.Tags)
	mine[n.ID] = n
	return n, nil
}

func (m *memNotes) GetNote(_ context.Context, owner, id string) (Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.notes[owner][id]
	if !ok {
		return Note{}, ErrNoteNotFound
	}
	return n, nil
}

func (m *memNotes) ListNotes(_ context.Context, owner string) ([]Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Note{}
	for _, n := range m.notes[owner] {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Note) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memNotes) SearchNotes(ctx context.Context, owner, query string) ([]Note, error) {
	all, _ := m.ListNotes(ctx, owner)
	var out []Note
	for _, n := range all {
		text := strings.ToLower(n.Title + " " + n.Body + " " + strings.Join(n.Tags, " "))
		match := true
		for _, w := range strings.Fields(strings.ToLower(query)) {
			if !strings.Contains(text, w) {
				match = false
			}
		}
		if match {
			out = append(out, n)
		}
	}
	return out, nil
}

func (m *memNotes) DeleteNote(_ context.Context, owner, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.notes[owner][id]; !ok {
		return ErrNoteNotFound
	}
	delete(m.notes[owner], id)
	return nil
}

// add saves a note for owner and returns its id.
func (m *memNotes) add(t testing.TB, owner, title, body string) string {
	t.Helper()
	n, err := m.SaveNote(t.Context(), owner, Note{Title: title, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return n.ID
}
