package authz

import (
	"errors"
	"fmt"
	"net/http"
)

// errTooLarge describes a body over the authorization server's cap.
var errTooLarge = fmt.Sprintf("The request body is larger than %d bytes.", maxFormBody)

// parseForm reads r's form body, capped at maxFormBody bytes, and returns
// the status to answer when that failed: 413 for a body over the cap
// (told by its Content-Length before anything is read, or found while
// reading), 400 for anything else; 0 when the form is parsed. With a 413
// it marks the answer to close the connection, since the rest of the body
// is left unread.
func parseForm(w http.ResponseWriter, r *http.Request) int {
	if r.ContentLength > maxFormBody {
		w.Header().Set("Connection", "close")
		return http.StatusRequestEntityTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.Header().Set("Connection", "close")
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusBadRequest
	}
	return 0
}

// readPageForm is parseForm for a form a person posts from a page: when
// the form cannot be read it answers with an error page and returns false.
func (s *Server) readPageForm(w http.ResponseWriter, r *http.Request) bool {
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		s.errorPage(w, http.StatusRequestEntityTooLarge, "Request too large", "The form is larger than this server accepts.")
		return false
	case http.StatusBadRequest:
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return false
	}
	return true
}

// readScriptForm is parseForm for a request a page's script sends: when
// the form cannot be read it answers with a JSON error and returns false.
func readScriptForm(w http.ResponseWriter, r *http.Request) bool {
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		scriptError(w, http.StatusRequestEntityTooLarge, "The request is larger than this server accepts.")
		return false
	case http.StatusBadRequest:
		scriptError(w, http.StatusBadRequest, "The request could not be read.")
		return false
	}
	return true
}

// writeTooLarge answers 413 with an OAuth error body (RFC 6749 §5.2
// invalid_request), for the token, revocation and introspection endpoints.
func writeTooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "invalid_request", "error_description": errTooLarge})
}
