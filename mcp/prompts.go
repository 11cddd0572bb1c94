package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The summarize_notes prompt and the scope prompts/get of it needs.
const (
	promptSummarizeNotes = "summarize_notes"
	promptScope          = ScopeNotesRead
	maxPromptNotes       = 50
)

func (s *Server) addPrompts() {
	s.mcp.AddPrompt(&sdk.Prompt{
		Name:        promptSummarizeNotes,
		Title:       "Summarize notes",
		Description: "Builds a request to summarize your notes about a topic. Requires scope " + promptScope + ".",
		Arguments: []*sdk.PromptArgument{{
			Name:        "topic",
			Description: "words your notes must contain (title, body or tags)",
			Required:    true,
		}},
	}, s.summarizeNotes)
}

// summarizeNotes builds one user message holding the caller's notes that
// match the topic.
func (s *Server) summarizeNotes(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	ti := req.Extra.TokenInfo
	if ti == nil || ti.UserID == "" || !slices.Contains(ti.Scopes, promptScope) {
		return nil, fmt.Errorf("%s needs scope %s", promptSummarizeNotes, promptScope)
	}
	topic := strings.TrimSpace(req.Params.Arguments["topic"])
	if topic == "" {
		return nil, errors.New("argument topic is required")
	}
	notes, err := s.cfg.Notes.SearchNotes(ctx, ti.UserID, topic)
	if err != nil {
		s.logStoreFailure(ctx, "method", "prompts/get", err)
		return nil, errors.New("searching notes failed")
	}
	var b strings.Builder
	if len(notes) == 0 {
		fmt.Fprintf(&b, "I have no notes about %q. Say so, and suggest what notes on this topic could hold.", topic)
	} else {
		fmt.Fprintf(&b, "Summarize my notes about %q: the main points, open questions and anything that contradicts itself.\n", topic)
		if len(notes) > maxPromptNotes {
			fmt.Fprintf(&b, "(Only the %d most recently updated of %d matching notes are included.)\n", maxPromptNotes, len(notes))
		}
		slices.SortStableFunc(notes, func(a, b Note) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
		for _, n := range notes[:min(len(notes), maxPromptNotes)] {
			fmt.Fprintf(&b, "\n---\n%s\n", noteMarkdown(n))
		}
	}
	return &sdk.GetPromptResult{
		Description: fmt.Sprintf("Summary of your notes about %q", topic),
		Messages:    []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: b.String()}}},
	}, nil
}
