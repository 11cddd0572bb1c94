package authz

import (
	"net/http"
)

// handleRevoke is RFC 7009 token revocation. Revoking either token of a
// grant revokes the grant's access and refresh tokens.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	w.Header().Set("Cache-Control", "no-store")
	err := s.oauth.NewRevocationRequest(r.Context(), r)
	s.oauth.WriteRevocationResponse(r.Context(), w, err)
}
