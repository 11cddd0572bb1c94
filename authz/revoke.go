package authz

import (
	"net/http"

	"github.com/ory/fosite"
)

// handleRevoke is RFC 7009 token revocation. Revoking either token of a
// grant revokes the grant's access and refresh tokens.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		writeTooLarge(w)
		return
	case http.StatusBadRequest:
		s.oauth.WriteRevocationResponse(r.Context(), w, fosite.ErrInvalidRequest.WithHint("The request body could not be read."))
		return
	}
	err := s.oauth.NewRevocationRequest(r.Context(), r)
	s.oauth.WriteRevocationResponse(r.Context(), w, err)
}
