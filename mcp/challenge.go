package mcp

import (
	"fmt"
	"net/http"
	"strings"
)

// challengeSchemes returns the schemes to challenge with: used first when
// the endpoint accepts it, then every other scheme it accepts (Bearer
// unless DPoP is required, DPoP when it is on).
func (s *Server) challengeSchemes(used string) []string {
	var accepted []string
	if !s.cfg.RequireDPoP {
		accepted = append(accepted, schemeBearer)
	}
	if s.cfg.DPoP != nil {
		accepted = append(accepted, schemeDPoP)
	}
	out := make([]string, 0, len(accepted))
	for _, sc := range accepted {
		if sc == used {
			out = append(out, sc)
		}
	}
	for _, sc := range accepted {
		if sc != used {
			out = append(out, sc)
		}
	}
	return out
}

// challenge adds one WWW-Authenticate challenge per scheme in schemes,
// with the auth-params params returns for it (first tells whether it is
// the first challenge, the one that carries an error). DPoP challenges
// get algs as well (RFC 9449 §7.1), and with nonces on the answer carries
// a DPoP-Nonce header.
func (s *Server) challenge(w http.ResponseWriter, schemes []string, params func(first bool) []string) {
	h := w.Header()
	for i, sc := range schemes {
		ps := params(i == 0)
		if sc == schemeDPoP {
			ps = append(ps, authParam("algs", strings.Join(s.cfg.DPoP.Algorithms(), " ")))
			if n := s.cfg.DPoP.Nonce(); n != "" {
				h.Set("DPoP-Nonce", n)
			}
		}
		h.Add("WWW-Authenticate", sc+" "+strings.Join(ps, ", "))
	}
}

// unauthorized answers 401 with challenges (RFC 6750 §3, RFC 9728 §5.1,
// RFC 9449 §7.1): one per scheme the endpoint accepts, the scheme the
// request used first and carrying the error. errCode is "" when no token
// was presented and invalid_token, invalid_dpop_proof or use_dpop_nonce
// otherwise; scope lists every scope the server knows, so a client asks
// for them all on its first authorization.
func (s *Server) unauthorized(w http.ResponseWriter, used, errCode, desc string) {
	s.challenge(w, s.challengeSchemes(used), func(first bool) []string {
		var ps []string
		if first && errCode != "" {
			ps = append(ps, authParam("error", errCode), authParam("error_description", desc))
		}
		return append(ps, authParam("resource_metadata", s.prmURL), authParam("scope", strings.Join(Scopes(), " ")))
	})
	http.Error(w, desc, http.StatusUnauthorized)
}

// badRequest answers 400 invalid_request (RFC 6750 §3.1) with the
// challenges of every accepted scheme, the first carrying the error.
func (s *Server) badRequest(w http.ResponseWriter, desc string) {
	s.challenge(w, s.challengeSchemes(""), func(first bool) []string {
		var ps []string
		if first {
			ps = append(ps, authParam("error", "invalid_request"), authParam("error_description", desc))
		}
		return append(ps, authParam("resource_metadata", s.prmURL))
	})
	http.Error(w, desc, http.StatusBadRequest)
}

// insufficientScope answers 403 with error="insufficient_scope" and scope
// naming every scope the request needs plus those the token already has,
// so a client that re-authorizes with it loses nothing (MCP authorization,
// scope challenge handling). The challenge is in the scheme the token
// came with.
func (s *Server) insufficientScope(w http.ResponseWriter, r *http.Request, scopes []string) {
	s.challenge(w, []string{requestScheme(r.Context())}, func(bool) []string {
		return []string{
			authParam("error", "insufficient_scope"),
			authParam("scope", strings.Join(scopes, " ")),
			authParam("resource_metadata", s.prmURL),
			authParam("error_description", "the access token lacks a scope this request needs"),
		}
	})
	http.Error(w, "insufficient scope: "+strings.Join(scopes, " "), http.StatusForbidden)
}

// authParam formats one auth-param as a quoted string (RFC 9110 §11.2).
// Values here never hold '"' or '\\', but escape them all the same.
func authParam(name, value string) string {
	value = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value)
	return fmt.Sprintf(`%s="%s"`, name, value)
}
