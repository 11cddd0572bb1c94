package authz

import (
	"encoding/json"
	"net/http"
)

// authServerMetadata is the RFC 8414 document.
type authServerMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported"`
	DPoPSigningAlgValuesSupported              []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

func (s *Server) metadata() authServerMetadata {
	var dpopAlgs []string
	if s.dpop != nil {
		dpopAlgs = s.dpop.Algorithms()
	}
	return authServerMetadata{
		Issuer:                                     s.issuer,
		AuthorizationEndpoint:                      s.issuer + "/authorize",
		TokenEndpoint:                              s.issuer + "/token",
		RegistrationEndpoint:                       s.issuer + "/register",
		RevocationEndpoint:                         s.issuer + "/revoke",
		IntrospectionEndpoint:                      s.issuer + "/introspect",
		ScopesSupported:                            append([]string(nil), s.scopeOrder...),
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token", "client_credentials"},
		TokenEndpointAuthMethodsSupported:          []string{"none", "client_secret_basic", "client_secret_post"},
		RevocationEndpointAuthMethodsSupported:     []string{"none", "client_secret_basic", "client_secret_post"},
		IntrospectionEndpointAuthMethodsSupported:  []string{"client_secret_basic", "client_secret_post"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          s.cfg.ClientMetadataDocuments,
		DPoPSigningAlgValuesSupported:              dpopAlgs,
	}
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.metadata())
}

// jwksPath serves the JSON Web Key Set OpenID Connect discovery requires a
// location for. It is empty: mcpd signs nothing a client verifies (no ID
// token, no JWT access token; tokens are opaque and checked here).
const jwksPath = "/jwks.json"

// openIDConfiguration is what /.well-known/openid-configuration serves.
// mcpd is an OAuth 2.1 server, not an OpenID Provider: this is the RFC
// 8414 document at the location RFC 8414 §5 shares with OpenID Connect
// Discovery, which MCP clients try too (and, for an issuer with a path
// behind a proxy that forwards only that path, reach first). OpenID
// Connect Discovery §3 requires three more members, and clients that read
// the document with an OpenID schema (the TypeScript SDK) refuse it
// without them, so they are here with true values: an empty key set, the
// one subject type (a user's name is the same for every client), and no
// ID token signing algorithm, because no ID token is ever issued.
// request_uri_parameter_supported defaults to true in OpenID Connect, so
// it says false. There is no userinfo_endpoint, no claims_supported and no
// openid scope.
type openIDConfiguration struct {
	authServerMetadata
	JWKSURI                          string   `json:"jwks_uri"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	RequestURIParameterSupported     bool     `json:"request_uri_parameter_supported"`
}

func (s *Server) openIDConfiguration() openIDConfiguration {
	return openIDConfiguration{
		authServerMetadata:               s.metadata(),
		JWKSURI:                          s.issuer + jwksPath,
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{},
		RequestURIParameterSupported:     false,
	}
}

func (s *Server) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.openIDConfiguration())
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]any{"keys": {}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
