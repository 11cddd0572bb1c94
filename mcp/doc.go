// Package mcp serves mcpd's MCP endpoint (/mcp, Streamable HTTP) on the
// go-sdk: its tools, resources and prompt, the bearer middleware with scope
// step-up, the RFC 9728 protected-resource metadata, and the Origin and Host
// checks against DNS rebinding.
//
// It declares the interfaces it needs (a token verifier, a NotesStore) and
// imports no other package of mcpd.
package mcp
