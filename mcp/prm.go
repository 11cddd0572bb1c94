package mcp

import (
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// prmPath is the RFC 9728 well-known prefix; the metadata of resource
// ISSUER/mcp lives at prmPath + "/mcp".
const prmPath = "/.well-known/oauth-protected-resource"

// prmHandler serves the protected-resource metadata of ISSUER/mcp: the
// issuer as its only authorization server, every scope, and bearer tokens
// in the Authorization header only.
func (s *Server) prmHandler() http.Handler {
	return auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               s.resource,
		AuthorizationServers:   []string{s.cfg.Issuer},
		ScopesSupported:        Scopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "mcpd",
	})
}
