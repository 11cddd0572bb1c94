package main

import (
	"fmt"
	"io"
)

// writeBanner prints the MCP URL and snippets to paste into clients. The
// initial password, when one was generated, is printed here once and never
// logged.
func writeBanner(w io.Writer, cfg *serveConfig, addr, initialPassword string) {
	mcpURL := cfg.Issuer + "/mcp"
	data := cfg.Data
	if cfg.Database != "" {
		data = displayDatabase(cfg.Database, cfg.Data)
	}
	fmt.Fprintf(w, `
mcpd %s is listening on %s
  MCP endpoint: %s
  data:         %s

VS Code (.vscode/mcp.json):
  { "servers": { "mcpd": { "type": "http", "url": %q } } }
Claude Code:
  claude mcp add --transport http mcpd %s

`, version, addr, mcpURL, data, mcpURL, mcpURL)
	if initialPassword != "" {
		fmt.Fprintf(w, `First start: created user "admin" with password

  %s

It is shown only this once. Change it with: mcpd user passwd admin --password-stdin

`, initialPassword)
	}
}
