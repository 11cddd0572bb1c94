package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpd/mcpd/mcp"
)

// memNotes is an in-memory mcp.NotesStore.
type memNotes struct {
	mu    sync.Mutex
	next  int
	notes map[string]map[string]mcp.Note // owner → id → note
}

func newMemNotes() *memNotes { return &memNotes{notes: make(map[string]map[string]mcp.Note)} }

func (m *memNotes) SaveNote(_ context.Context, owner string, n mcp.Note) (mcp.Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mine := m.notes[owner]
	if mine == nil {
		mine = make(map[string]mcp.Note)
		m.notes[owner] = mine
	}
	now := time.Now()
	if n.ID == "" {
		m.next++
		n.ID = fmt.Sprintf("n%d", m.next)
		n.CreatedAt = now
	} else if old, ok := mine[n.ID]; ok {
		n.CreatedAt = old.CreatedAt
	} else {
		return mcp.Note{}, mcp.ErrNoteNotFound
	}
	n.UpdatedAt = now
	mine[n.ID] = n
	return n, nil
}

func (m *memNotes) GetNote(_ context.Context, owner, id string) (mcp.Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.notes[owner][id]
	if !ok {
		return mcp.Note{}, mcp.ErrNoteNotFound
	}
	return n, nil
}

func (m *memNotes) ListNotes(_ context.Context, owner string) ([]mcp.Note, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []mcp.Note
	for _, n := range m.notes[owner] {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b mcp.Note) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memNotes) SearchNotes(ctx context.Context, owner, query string) ([]mcp.Note, error) {
	all, _ := m.ListNotes(ctx, owner)
	var out []mcp.Note
	for _, n := range all {
		text := strings.ToLower(n.Title + " " + n.Body + " " + strings.Join(n.Tags, " "))
		if !slices.ContainsFunc(strings.Fields(strings.ToLower(query)), func(w string) bool { return !strings.Contains(text, w) }) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (m *memNotes) DeleteNote(_ context.Context, owner, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.notes[owner][id]; !ok {
		return mcp.ErrNoteNotFound
	}
	delete(m.notes[owner], id)
	return nil
}
