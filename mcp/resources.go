package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Every note is the resource note://{id}; reading one needs resourceScope.
const (
	noteURIPrefix   = "note://"
	noteURITemplate = "note://{id}"
	noteMIMEType    = "text/markdown"
	resourceScope   = ScopeNotesRead
)

// addResources adds the note://{id} template and a middleware that answers
// resources/list with the caller's own notes (the SDK's list is the same
// for every session, so it cannot hold per-user resources).
func (s *Server) addResources() {
	s.mcp.AddResourceTemplate(&sdk.ResourceTemplate{
		Name:        "note",
		Title:       "Note",
		Description: "One of your notes, as Markdown. Requires scope " + resourceScope + ".",
		URITemplate: noteURITemplate,
		MIMEType:    noteMIMEType,
	}, s.readNote)
	s.mcp.AddReceivingMiddleware(s.listNotesAsResources)
}

// listNotesAsResources answers resources/list with the SDK's static
// resources (mcpd has none; an Extension may add some) followed, on the
// last page, by the caller's notes; a token without resourceScope sees no
// notes. The result holds the caller's notes, so it is private.
func (s *Server) listNotesAsResources(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if method != "resources/list" {
			return next(ctx, method, req)
		}
		r, err := next(ctx, method, req)
		if err != nil {
			return nil, err
		}
		res, ok := r.(*sdk.ListResourcesResult)
		if !ok {
			return r, nil
		}
		res.Cacheable = notesListHints()
		if res.Resources == nil {
			res.Resources = []*sdk.Resource{}
		}
		extra := req.GetExtra()
		if res.NextCursor != "" || extra == nil || extra.TokenInfo == nil || extra.TokenInfo.UserID == "" || !slices.Contains(extra.TokenInfo.Scopes, resourceScope) {
			return res, nil
		}
		notes, err := s.cfg.Notes.ListNotes(ctx, extra.TokenInfo.UserID)
		if err != nil {
			s.logStoreFailure(ctx, "method", method, err)
			return nil, errors.New("listing notes failed")
		}
		for _, n := range summaries(notes).Notes {
			res.Resources = append(res.Resources, &sdk.Resource{
				URI:      noteURIPrefix + n.ID,
				Name:     "note-" + n.ID,
				Title:    n.Title,
				MIMEType: noteMIMEType,
			})
		}
		return res, nil
	}
}

// readNote reads note://{id} of the caller; another owner's note is not
// found, exactly like a missing one.
func (s *Server) readNote(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	uri := req.Params.URI
	ti := req.Extra.TokenInfo
	if ti == nil || ti.UserID == "" || !slices.Contains(ti.Scopes, resourceScope) {
		return nil, fmt.Errorf("reading %s needs scope %s", uri, resourceScope)
	}
	id, ok := strings.CutPrefix(uri, noteURIPrefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, sdk.ResourceNotFoundError(uri)
	}
	n, err := s.cfg.Notes.GetNote(ctx, ti.UserID, id)
	if errors.Is(err, ErrNoteNotFound) {
		return nil, sdk.ResourceNotFoundError(uri)
	}
	if err != nil {
		s.logStoreFailure(ctx, "method", "resources/read", err)
		return nil, errors.New("reading the note failed")
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{
		URI: uri, MIMEType: noteMIMEType, Text: noteMarkdown(n),
	}}}, nil
}

// noteMarkdown renders a note as Markdown: title, tags, body.
func noteMarkdown(n Note) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", n.Title)
	if len(n.Tags) > 0 {
		fmt.Fprintf(&b, "Tags: %s\n\n", strings.Join(n.Tags, ", "))
	}
	b.WriteString(n.Body)
	return b.String()
}
