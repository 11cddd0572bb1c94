package mcp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestNoteResources(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-all")
	var saved noteSaveOut
	if msg := callTool(t, cs, "note_save", map[string]any{"title": "Recipe", "body": "flour, water", "tags": []string{"food"}}, &saved); msg != "" {
		t.Fatal(msg)
	}

	t.Run("the note://{id} template is listed", func(t *testing.T) {
		res, err := cs.ListResourceTemplates(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rt := range res.ResourceTemplates {
			got = append(got, rt.URITemplate)
		}
		if diff := cmp.Diff([]string{"note://{id}"}, got); diff != "" {
			t.Errorf("templates (-want +got):\n%s", diff)
		}
	})
	t.Run("resources/list names every note of the caller", func(t *testing.T) {
		res, err := cs.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []*sdk.Resource{{URI: "note://" + saved.ID, Name: "note-" + saved.ID, Title: "Recipe", MIMEType: "text/markdown"}}
		if diff := cmp.Diff(want, res.Resources); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}
	})
	t.Run("resources/read returns the note as markdown", func(t *testing.T) {
		res, err := cs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "note://" + saved.ID})
		if err != nil {
			t.Fatal(err)
		}
		want := []*sdk.ResourceContents{{URI: "note://" + saved.ID, MIMEType: "text/markdown", Text: "# Recipe\n\nTags: food\n\nflour, water"}}
		if diff := cmp.Diff(want, res.Contents); diff != "" {
			t.Errorf("contents (-want +got):\n%s", diff)
		}
	})
	t.Run("resources/read of an unknown note is not found", func(t *testing.T) {
		_, err := cs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "note://nope"})
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("err = %v; want resource not found", err)
		}
	})
	t.Run("a token without notes:read lists no resources", func(t *testing.T) {
		none := env.connect(t, "alice-none")
		res, err := none.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Resources) != 0 {
			t.Errorf("resources = %d; want none", len(res.Resources))
		}
	})
}

func TestSummarizeNotesPrompt(t *testing.T) {
	env := newTestEnv(t, nil)
	cs := env.connect(t, "alice-all")
	callTool(t, cs, "note_save", map[string]any{"title": "Garden", "body": "plant tomatoes in May", "tags": []string{"garden"}}, nil)
	callTool(t, cs, "note_save", map[string]any{"title": "Taxes", "body": "file by April"}, nil)

	t.Run("prompts/list declares summarize_notes with a required topic", func(t *testing.T) {
		res, err := cs.ListPrompts(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Prompts) != 1 || res.Prompts[0].Name != "summarize_notes" || len(res.Prompts[0].Arguments) != 1 || !res.Prompts[0].Arguments[0].Required {
			t.Errorf("prompts = %+v; want summarize_notes(topic required)", res.Prompts)
		}
	})
	t.Run("the prompt holds the notes matching the topic and no others", func(t *testing.T) {
		res, err := cs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "summarize_notes", Arguments: map[string]string{"topic": "garden"}})
		if err != nil {
			t.Fatal(err)
		}
		text := promptText(res)
		if !strings.Contains(text, "plant tomatoes in May") || strings.Contains(text, "file by April") {
			t.Errorf("prompt text = %q", text)
		}
	})
	t.Run("a topic with no notes says so", func(t *testing.T) {
		res, err := cs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "summarize_notes", Arguments: map[string]string{"topic": "sailing"}})
		if err != nil {
			t.Fatal(err)
		}
		if text := promptText(res); !strings.Contains(text, `no notes about "sailing"`) {
			t.Errorf("prompt text = %q", text)
		}
	})
	t.Run("a missing topic is an error", func(t *testing.T) {
		if _, err := cs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "summarize_notes"}); err == nil {
			t.Error("GetPrompt without topic succeeded; want an error")
		}
	})
}
