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
// issuer as its only authorization server, every scope, tokens in the
// Authorization header only, and, with DPoP on, the proof algorithms and
// whether DPoP-bound tokens are required (RFC 9728 §2; false is the
// default and left out).
func (s *Server) prmHandler() http.Handler {
	md := &oauthex.ProtectedResourceMetadata{
		Resource:                      s.resource,
		AuthorizationServers:          []string{s.cfg.Issuer},
		ScopesSupported:               Scopes(),
		BearerMethodsSupported:        []string{"header"},
		ResourceName:                  "mcpd",
		DPOPBoundAccessTokensRequired: s.cfg.RequireDPoP,
	}
	if s.cfg.DPoP != nil {
		md.DPOPSigningAlgValuesSupported = s.cfg.DPoP.Algorithms()
	}
	return auth.ProtectedResourceMetadataHandler(md)
}
