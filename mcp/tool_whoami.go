package mcp

import (
	"context"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// whoamiOut is the whoami tool's structured result.
type whoamiOut struct {
	User      string   `json:"user" jsonschema:"the user name, or client:<client_id> for a client-credentials token"`
	ClientID  string   `json:"client_id" jsonschema:"the OAuth client the token was issued to"`
	Scopes    []string `json:"scopes" jsonschema:"the scopes the token grants"`
	ExpiresAt string   `json:"expires_at" jsonschema:"when the token expires (RFC 3339), empty if unknown"`
}

func (s *Server) whoami(_ context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, whoamiOut, error) {
	ti := req.Extra.TokenInfo
	out := whoamiOut{User: ti.UserID, Scopes: append([]string{}, ti.Scopes...)}
	if id, ok := ti.Extra["client_id"].(string); ok {
		out.ClientID = id
	}
	if !ti.Expiration.IsZero() {
		out.ExpiresAt = ti.Expiration.UTC().Format(time.RFC3339)
	}
	return nil, out, nil
}
