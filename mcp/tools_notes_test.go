package mcp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestNoteRoundTrip(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-all")

	var saved noteSaveOut
	if msg := callTool(t, cs, "note_save", map[string]any{"title": "Groceries", "body": "milk and eggs", "tags": []string{"home", "shopping"}}, &saved); msg != "" {
		t.Fatalf("note_save: %s", msg)
	}
	var got noteOut
	if msg := callTool(t, cs, "note_get", map[string]any{"id": saved.ID}, &got); msg != "" {
		t.Fatalf("note_get: %s", msg)
	}
	if diff := cmp.Diff(noteOut{ID: saved.ID, Title: "Groceries", Body: "milk and eggs", Tags: []string{"home", "shopping"}, CreatedAt: got.CreatedAt, UpdatedAt: got.UpdatedAt}, got); diff != "" || got.CreatedAt == "" {
		t.Errorf("note_get (-want +got):\n%s (created_at %q)", diff, got.CreatedAt)
	}

	var updated noteSaveOut
	if msg := callTool(t, cs, "note_save", map[string]any{"id": saved.ID, "title": "Groceries", "body": "milk, eggs, bread"}, &updated); msg != "" || updated.ID != saved.ID {
		t.Fatalf("note_save with id: %q, id %q; want the same id %q", msg, updated.ID, saved.ID)
	}
	var other noteSaveOut
	callTool(t, cs, "note_save", map[string]any{"title": "Trip", "body": "book the train", "tags": []string{"travel"}}, &other)

	var list notesOut
	if msg := callTool(t, cs, "note_list", map[string]any{}, &list); msg != "" {
		t.Fatalf("note_list: %s", msg)
	}
	if diff := cmp.Diff([]string{saved.ID, other.ID}, ids(list), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("note_list ids (-want +got):\n%s", diff)
	}
	var found notesOut
	if msg := callTool(t, cs, "note_search", map[string]any{"query": "BREAD milk"}, &found); msg != "" {
		t.Fatalf("note_search: %s", msg)
	}
	if diff := cmp.Diff([]string{saved.ID}, ids(found)); diff != "" {
		t.Errorf("note_search ids (-want +got):\n%s", diff)
	}
	var del noteDeleteOut
	if msg := callTool(t, cs, "note_delete", map[string]any{"id": saved.ID}, &del); msg != "" || !del.Deleted {
		t.Fatalf("note_delete: %q, deleted %v", msg, del.Deleted)
	}
	if msg := callTool(t, cs, "note_get", map[string]any{"id": saved.ID}, nil); !strings.Contains(msg, "no note with id") {
		t.Errorf("note_get after delete: %q; want a tool error naming the missing note", msg)
	}
}

func TestNoteToolErrorsAreToolResults(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-all")
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		wantMsg string
	}{
		{"an empty title is refused", "note_save", map[string]any{"title": " ", "body": "b"}, "title must not be empty"},
		{"a title with a NUL is refused", "note_save", map[string]any{"title": "a\x00b", "body": "b"}, "without control characters"},
		{"a title of two lines is refused", "note_save", map[string]any{"title": "a\nb", "body": "b"}, "without control characters"},
		{"a tag with a control character is refused", "note_save", map[string]any{"title": "t", "body": "b", "tags": []string{"a\x1bb"}}, "control character"},
		{"a missing title fails the input schema", "note_save", map[string]any{"body": "b"}, "title"},
		{"saving an unknown id is refused", "note_save", map[string]any{"id": "zzz", "title": "t", "body": "b"}, `no note with id "zzz"`},
		{"getting an unknown id names it", "note_get", map[string]any{"id": "zzz"}, `no note with id "zzz"`},
		{"deleting an unknown id names it", "note_delete", map[string]any{"id": "zzz"}, `no note with id "zzz"`},
		{"an empty search is refused", "note_search", map[string]any{"query": ""}, "query must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := callTool(t, cs, tt.tool, tt.args, nil)
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("tool error = %q; want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

// TestNotesAreIsolatedBetweenUsers checks that bob reaches none of alice's
// notes by any path.
func TestNotesAreIsolatedBetweenUsers(t *testing.T) {
	env := newTestEnv(t, nil)
	alice := env.connect(t, "alice-all")
	bob := env.connect(t, "bob-all")
	var secret noteSaveOut
	if msg := callTool(t, alice, "note_save", map[string]any{"title": "alice secret", "body": "launch codes", "tags": []string{"secret"}}, &secret); msg != "" {
		t.Fatalf("alice note_save: %s", msg)
	}
	var bobs noteSaveOut
	if msg := callTool(t, bob, "note_save", map[string]any{"title": "bob's plan", "body": "nothing secret"}, &bobs); msg != "" {
		t.Fatalf("bob note_save: %s", msg)
	}

	t.Run("note_get of alice's id is not found for bob", func(t *testing.T) {
		if msg := callTool(t, bob, "note_get", map[string]any{"id": secret.ID}, nil); !strings.Contains(msg, "no note with id") {
			t.Errorf("got %q; want not found", msg)
		}
	})
	t.Run("note_list shows bob only his notes", func(t *testing.T) {
		var list notesOut
		callTool(t, bob, "note_list", map[string]any{}, &list)
		if diff := cmp.Diff([]string{bobs.ID}, ids(list)); diff != "" {
			t.Errorf("ids (-want +got):\n%s", diff)
		}
	})
	t.Run("note_search finds none of alice's notes for bob", func(t *testing.T) {
		var found notesOut
		callTool(t, bob, "note_search", map[string]any{"query": "secret"}, &found)
		if diff := cmp.Diff([]string{bobs.ID}, ids(found)); diff != "" {
			t.Errorf("ids (-want +got):\n%s", diff)
		}
	})
	t.Run("note_save with alice's id does not overwrite her note", func(t *testing.T) {
		if msg := callTool(t, bob, "note_save", map[string]any{"id": secret.ID, "title": "pwned", "body": "x"}, nil); !strings.Contains(msg, "no note with id") {
			t.Errorf("got %q; want not found", msg)
		}
	})
	t.Run("note_delete of alice's id is not found for bob", func(t *testing.T) {
		if msg := callTool(t, bob, "note_delete", map[string]any{"id": secret.ID}, nil); !strings.Contains(msg, "no note with id") {
			t.Errorf("got %q; want not found", msg)
		}
	})
	t.Run("resources/list shows bob only his notes", func(t *testing.T) {
		res, err := bob.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, r := range res.Resources {
			uris = append(uris, r.URI)
		}
		if diff := cmp.Diff([]string{"note://" + bobs.ID}, uris); diff != "" {
			t.Errorf("uris (-want +got):\n%s", diff)
		}
	})
	t.Run("resources/read of alice's note is not found for bob", func(t *testing.T) {
		_, err := bob.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "note://" + secret.ID})
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("err = %v; want resource not found", err)
		}
	})
	t.Run("summarize_notes gives bob none of alice's notes", func(t *testing.T) {
		res, err := bob.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "summarize_notes", Arguments: map[string]string{"topic": "secret"}})
		if err != nil {
			t.Fatal(err)
		}
		text := promptText(res)
		if strings.Contains(text, "launch codes") || !strings.Contains(text, "nothing secret") {
			t.Errorf("prompt text = %q; want bob's note and not alice's", text)
		}
	})
	t.Run("alice still has her note untouched", func(t *testing.T) {
		var got noteOut
		if msg := callTool(t, alice, "note_get", map[string]any{"id": secret.ID}, &got); msg != "" || got.Body != "launch codes" || got.Title != "alice secret" {
			t.Errorf("alice note_get: %q %+v", msg, got)
		}
	})
}

func ids(n notesOut) []string {
	out := []string{}
	for _, s := range n.Notes {
		out = append(out, s.ID)
	}
	return out
}

func promptText(res *sdk.GetPromptResult) string {
	var b strings.Builder
	for _, m := range res.Messages {
		if tc, ok := m.Content.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// failingNotes is a NotesStore whose every call fails with a message that
// must not reach the caller.
type failingNotes struct{}

var errDisk = errors.New("bbolt: /secret/path/mcpd.db: disk on fire")

func (failingNotes) SaveNote(context.Context, string, Note) (Note, error)  { return Note{}, errDisk }
func (failingNotes) GetNote(context.Context, string, string) (Note, error) { return Note{}, errDisk }
func (failingNotes) ListNotes(context.Context, string) ([]Note, error)     { return nil, errDisk }
func (failingNotes) SearchNotes(context.Context, string, string) ([]Note, error) {
	return nil, errDisk
}
func (failingNotes) DeleteNote(context.Context, string, string) error { return errDisk }

func TestStoreFailuresAreToolErrorsWithoutDetails(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Notes = failingNotes{} })
	cs := env.connect(t, "alice-all")
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"note_save", map[string]any{"title": "t", "body": "b"}},
		{"note_get", map[string]any{"id": "n1"}},
		{"note_list", map[string]any{}},
		{"note_search", map[string]any{"query": "q"}},
		{"note_delete", map[string]any{"id": "n1"}},
	} {
		t.Run(tc.tool+" reports a store failure as a tool error that hides its cause", func(t *testing.T) {
			msg := callTool(t, cs, tc.tool, tc.args, nil)
			if !strings.Contains(msg, "the notes store failed") || strings.Contains(msg, "secret") {
				t.Errorf("tool error = %q; want a generic store failure", msg)
			}
		})
	}
}
