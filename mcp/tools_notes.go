package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits on what note_save accepts.
const (
	maxTitleRunes = 200
	maxTags       = 32
	maxTagRunes   = 64
)

type noteSaveIn struct {
	Title string   `json:"title" jsonschema:"the note's title"`
	Body  string   `json:"body" jsonschema:"the note's text"`
	Tags  []string `json:"tags,omitempty" jsonschema:"optional tags"`
	ID    string   `json:"id,omitempty" jsonschema:"the id of an existing note to replace; omit to create a new note"`
}

type noteSaveOut struct {
	ID string `json:"id" jsonschema:"the id of the saved note"`
}

type noteIDIn struct {
	ID string `json:"id" jsonschema:"the note's id"`
}

type noteOut struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Body      string   `json:"body"`
	Tags      []string `json:"tags"`
	CreatedAt string   `json:"created_at" jsonschema:"RFC 3339"`
	UpdatedAt string   `json:"updated_at" jsonschema:"RFC 3339"`
}

type noteSummary struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Tags      []string `json:"tags"`
	UpdatedAt string   `json:"updated_at" jsonschema:"RFC 3339"`
}

type noteListIn struct{}

type noteSearchIn struct {
	Query string `json:"query" jsonschema:"words that must all appear in the title, body or tags"`
}

type notesOut struct {
	Notes []noteSummary `json:"notes"`
}

type noteDeleteOut struct {
	Deleted bool `json:"deleted"`
}

func (s *Server) noteSave(ctx context.Context, req *sdk.CallToolRequest, in noteSaveIn) (*sdk.CallToolResult, noteSaveOut, error) {
	in.Title = strings.TrimSpace(in.Title)
	switch {
	case in.Title == "":
		return nil, noteSaveOut{}, errors.New("note_save: title must not be empty")
	case utf8.RuneCountInString(in.Title) > maxTitleRunes:
		return nil, noteSaveOut{}, fmt.Errorf("note_save: title is longer than %d characters", maxTitleRunes)
	case len(in.Tags) > maxTags:
		return nil, noteSaveOut{}, fmt.Errorf("note_save: more than %d tags", maxTags)
	case hasControl(in.Title):
		return nil, noteSaveOut{}, errors.New("note_save: the title must be one line without control characters")
	}
	tags := make([]string, 0, len(in.Tags))
	for _, t := range in.Tags {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if utf8.RuneCountInString(t) > maxTagRunes {
			return nil, noteSaveOut{}, fmt.Errorf("note_save: tag %q is longer than %d characters", t, maxTagRunes)
		}
		if hasControl(t) {
			return nil, noteSaveOut{}, fmt.Errorf("note_save: tag %q has a control character", t)
		}
		tags = append(tags, t)
	}
	n, err := s.cfg.Notes.SaveNote(ctx, owner(req), Note{ID: in.ID, Title: in.Title, Body: in.Body, Tags: tags})
	if errors.Is(err, ErrNoteNotFound) {
		return nil, noteSaveOut{}, fmt.Errorf("note_save: you have no note with id %q (omit id to create a note)", in.ID)
	}
	if err != nil {
		return nil, noteSaveOut{}, s.storeError(ctx, "note_save", err)
	}
	return nil, noteSaveOut{ID: n.ID}, nil
}

func (s *Server) noteGet(ctx context.Context, req *sdk.CallToolRequest, in noteIDIn) (*sdk.CallToolResult, noteOut, error) {
	n, err := s.cfg.Notes.GetNote(ctx, owner(req), in.ID)
	if errors.Is(err, ErrNoteNotFound) {
		return nil, noteOut{}, fmt.Errorf("note_get: you have no note with id %q", in.ID)
	}
	if err != nil {
		return nil, noteOut{}, s.storeError(ctx, "note_get", err)
	}
	return nil, noteOut{
		ID: n.ID, Title: n.Title, Body: n.Body, Tags: nonNil(n.Tags),
		CreatedAt: timestamp(n.CreatedAt), UpdatedAt: timestamp(n.UpdatedAt),
	}, nil
}

func (s *Server) noteList(ctx context.Context, req *sdk.CallToolRequest, _ noteListIn) (*sdk.CallToolResult, notesOut, error) {
	notes, err := s.cfg.Notes.ListNotes(ctx, owner(req))
	if err != nil {
		return nil, notesOut{}, s.storeError(ctx, "note_list", err)
	}
	return nil, summaries(notes), nil
}

func (s *Server) noteSearch(ctx context.Context, req *sdk.CallToolRequest, in noteSearchIn) (*sdk.CallToolResult, notesOut, error) {
	if strings.TrimSpace(in.Query) == "" {
		return nil, notesOut{}, errors.New("note_search: query must not be empty (use note_list to see every note)")
	}
	notes, err := s.cfg.Notes.SearchNotes(ctx, owner(req), in.Query)
	if err != nil {
		return nil, notesOut{}, s.storeError(ctx, "note_search", err)
	}
	return nil, summaries(notes), nil
}

func (s *Server) noteDelete(ctx context.Context, req *sdk.CallToolRequest, in noteIDIn) (*sdk.CallToolResult, noteDeleteOut, error) {
	err := s.cfg.Notes.DeleteNote(ctx, owner(req), in.ID)
	if errors.Is(err, ErrNoteNotFound) {
		return nil, noteDeleteOut{}, fmt.Errorf("note_delete: you have no note with id %q", in.ID)
	}
	if err != nil {
		return nil, noteDeleteOut{}, s.storeError(ctx, "note_delete", err)
	}
	return nil, noteDeleteOut{Deleted: true}, nil
}

// hasControl reports whether s holds a control character (NUL, a line
// break…): titles and tags are single lines shown in lists; a body may be
// any text.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// storeError logs a storage failure and returns a tool error that does not
// leak its details.
func (s *Server) storeError(ctx context.Context, toolName string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%s: the server cannot save anything right now (its storage is full or unavailable); try again later", toolName)
	}
	s.logStoreFailure(ctx, "tool", toolName, err)
	return fmt.Errorf("%s: the notes store failed; try again later", toolName)
}

// logStoreFailure logs a notes store failure of a tool or method (kind
// "tool" or "method"), except ErrUnavailable, which the store logs once
// however many requests it fails.
func (s *Server) logStoreFailure(ctx context.Context, kind, name string, err error) {
	if errors.Is(err, ErrUnavailable) {
		return
	}
	s.log.ErrorContext(ctx, "notes store failed", kind, name, "err", err)
}

// summaries lists notes most recently updated first.
func summaries(notes []Note) notesOut {
	notes = slices.Clone(notes)
	slices.SortStableFunc(notes, func(a, b Note) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	out := notesOut{Notes: make([]noteSummary, 0, len(notes))}
	for _, n := range notes {
		out.Notes = append(out.Notes, noteSummary{ID: n.ID, Title: n.Title, Tags: nonNil(n.Tags), UpdatedAt: timestamp(n.UpdatedAt)})
	}
	return out
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
