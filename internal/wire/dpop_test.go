package wire_test

import (
	"testing"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/mcp"
)

// TestExtraJKTAgrees: authz's Verify reports a token's DPoP binding under
// the key the MCP endpoint reads it from.
func TestExtraJKTAgrees(t *testing.T) {
	if authz.ExtraJKT != mcp.ExtraJKT {
		t.Fatalf("authz.ExtraJKT %q, mcp.ExtraJKT %q; want them equal", authz.ExtraJKT, mcp.ExtraJKT)
	}
}
