package mcp

import (
	"fmt"
	"net/http"
	"strings"
)

// unauthorized answers 401 with a Bearer challenge (RFC 6750 §3, RFC 9728
// §5.1). errCode is "" when no token was presented and "invalid_token"
// otherwise; scope lists every scope the server knows, so a client asks for
// them all on its first authorization.
func (s *Server) unauthorized(w http.ResponseWriter, errCode, desc string) {
	params := []string{}
	if errCode != "" {
		params = append(params, authParam("error", errCode), authParam("error_description", desc))
	}
	params = append(params, authParam("resource_metadata", s.prmURL), authParam("scope", strings.Join(Scopes(), " ")))
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	http.Error(w, desc, http.StatusUnauthorized)
}

// insufficientScope answers 403 with error="insufficient_scope" and scope
// naming every scope the request needs plus those the token already has,
// so a client that re-authorizes with it loses nothing (MCP authorization,
// scope challenge handling).
func (s *Server) insufficientScope(w http.ResponseWriter, scopes []string) {
	params := []string{
		authParam("error", "insufficient_scope"),
		authParam("scope", strings.Join(scopes, " ")),
		authParam("resource_metadata", s.prmURL),
		authParam("error_description", "the access token lacks a scope this request needs"),
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	http.Error(w, "insufficient scope: "+strings.Join(scopes, " "), http.StatusForbidden)
}

// authParam formats one auth-param as a quoted string (RFC 9110 §11.2).
// Values here never hold '"' or '\\', but escape them all the same.
func authParam(name, value string) string {
	value = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value)
	return fmt.Sprintf(`%s="%s"`, name, value)
}
