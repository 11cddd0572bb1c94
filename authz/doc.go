// Package authz is mcpd's OAuth 2.1 authorization server, composed on
// fosite. It owns /authorize, /token, /register, /revoke, /introspect, the
// RFC 8414 metadata document, the login and consent flow, and the token
// verification the MCP resource server calls on every request.
//
// It declares the Storage it needs and never imports the store package;
// cmd/mcpd adapts the bbolt store to it. It renders pages only through web.
package authz
