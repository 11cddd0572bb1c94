package mcp

import (
	"context"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Caching hints (ttlMs, cacheScope) of the cacheable results
// (MCP 2026-07-28, server/utilities/caching; SEP-2549).
const (
	// staticListTTL is how long a client may reuse server/discover,
	// tools/list, prompts/list and resources/templates/list: they are the
	// same for every caller and change only when mcpd restarts with
	// another configuration.
	staticListTTL = 5 * time.Minute
	// cacheScopePublic: any client or intermediary may serve the result
	// to anyone; cacheScopePrivate: only the caller's own client may.
	cacheScopePublic  = "public"
	cacheScopePrivate = "private"
)

// cacheHints is the go-sdk's ServerOptions.SetCacheable: per-user results
// (the caller's notes as resources) are private and immediately stale;
// everything else is public for staticListTTL. listNotesAsResources sets
// notesListHints again on the resources/list result it adds the caller's
// notes to, whatever an Extension's server answered.
func cacheHints(_ context.Context, req sdk.Request, c *sdk.Cacheable) {
	switch req.(type) {
	case *sdk.ListResourcesRequest, *sdk.ReadResourceRequest:
		*c = notesListHints()
	default:
		c.TTLMs = int(staticListTTL / time.Millisecond)
		c.CacheScope = cacheScopePublic
	}
}

// notesListHints are the hints of a result made of the caller's notes:
// they change with every note_save and note_delete, so the result is stale
// at once (ttlMs 0), and it belongs to the caller alone.
func notesListHints() sdk.Cacheable {
	return sdk.Cacheable{TTLMs: 0, CacheScope: cacheScopePrivate}
}
