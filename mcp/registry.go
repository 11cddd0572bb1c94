package mcp

import (
	"context"
	"fmt"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The scopes of the MCP endpoint (DESIGN.md, "Scopes and tools").
const (
	ScopeNotesRead  = "notes:read"
	ScopeNotesWrite = "notes:write"
	ScopeAPICall    = "api:call"
)

// tool is one declared tool: its name, the scope a call needs ("" for any
// valid token), and how to add it to the SDK server.
type tool struct {
	name  string
	scope string
	add   func(*sdk.Server)
}

// toolRegistry is the one place that declares the tools and their scopes.
// The bearer middleware answers 403 insufficient_scope from it before the
// SDK runs, and each handler checks the scope again. To add a tool, append
// a declare(...) here; see docs/extending.md.
func (s *Server) toolRegistry() []tool {
	return []tool{
		declare(&sdk.Tool{
			Name:        "whoami",
			Title:       "Who am I",
			Description: "Tells who the access token belongs to: user, client, granted scopes and expiry.",
			Annotations: readOnly(),
		}, "", s.whoami),
		declare(&sdk.Tool{
			Name:        "note_save",
			Title:       "Save a note",
			Description: "Saves a note (title, body, optional tags) and returns its id. Passing the id of an existing note replaces that note.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(false)},
		}, ScopeNotesWrite, s.noteSave),
		declare(&sdk.Tool{
			Name:        "note_get",
			Title:       "Get a note",
			Description: "Returns one of your notes by id.",
			Annotations: readOnly(),
		}, ScopeNotesRead, s.noteGet),
		declare(&sdk.Tool{
			Name:        "note_list",
			Title:       "List notes",
			Description: "Lists your notes (id, title, tags, last update), most recently updated first.",
			Annotations: readOnly(),
		}, ScopeNotesRead, s.noteList),
		declare(&sdk.Tool{
			Name:        "note_search",
			Title:       "Search notes",
			Description: "Finds your notes whose title, body or tags contain every word of the query (case-insensitive).",
			Annotations: readOnly(),
		}, ScopeNotesRead, s.noteSearch),
		declare(&sdk.Tool{
			Name:        "note_delete",
			Title:       "Delete a note",
			Description: "Deletes one of your notes by id.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)},
		}, ScopeNotesWrite, s.noteDelete),
		declare(&sdk.Tool{
			Name:        "api_call",
			Title:       "Call an upstream API",
			Description: "Calls an upstream HTTP API that the operator configured, by upstream name, with an allowed method and a path under an allowed prefix. " + s.upstreamSummary(),
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)},
		}, ScopeAPICall, s.apiCall),
	}
}

// declare binds a typed handler to a tool and the scope it needs. The
// description gets the scope appended, input and output schemas come from
// In and Out, and the handler runs only when the token has the scope.
func declare[In, Out any](t *sdk.Tool, scope string, h sdk.ToolHandlerFor[In, Out]) tool {
	if scope == "" {
		t.Description += " Needs only a valid access token."
	} else {
		t.Description += fmt.Sprintf(" Requires scope %s.", scope)
	}
	guarded := func(ctx context.Context, req *sdk.CallToolRequest, in In) (*sdk.CallToolResult, Out, error) {
		var zero Out
		ti := req.Extra.TokenInfo
		if ti == nil || ti.UserID == "" {
			return nil, zero, fmt.Errorf("%s: the access token names no user", t.Name)
		}
		if scope != "" && !slices.Contains(ti.Scopes, scope) {
			return nil, zero, fmt.Errorf("%s: the access token lacks scope %s", t.Name, scope)
		}
		return h(ctx, req, in)
	}
	return tool{name: t.Name, scope: scope, add: func(s *sdk.Server) { sdk.AddTool(s, t, guarded) }}
}

// owner is whose notes a request may touch: the token's UserID.
func owner(req *sdk.CallToolRequest) string { return ownerOf(req.Extra.TokenInfo) }

func ownerOf(ti *auth.TokenInfo) string {
	if ti == nil {
		return ""
	}
	return ti.UserID
}

func readOnly() *sdk.ToolAnnotations {
	return &sdk.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}
}

func ptr[T any](v T) *T { return &v }
