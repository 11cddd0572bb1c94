package authz

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"
)

// errInvalidTarget is RFC 8707's invalid_target error.
func errInvalidTarget(description string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{
		ErrorField:       "invalid_target",
		DescriptionField: "The requested resource is invalid, unknown, or malformed.",
		HintField:        description,
		CodeField:        http.StatusBadRequest,
	}
}

// sameResource reports whether a requested RFC 8707 resource names want.
// A trailing slash and the case of scheme and host do not matter.
func sameResource(requested, want string) bool {
	norm := func(s string) (string, bool) {
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.Fragment != "" || u.RawQuery != "" || u.User != nil {
			return "", false
		}
		u.Scheme = strings.ToLower(u.Scheme)
		u.Host = strings.ToLower(u.Host)
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		return u.String(), true
	}
	a, ok1 := norm(requested)
	b, ok2 := norm(want)
	return ok1 && ok2 && a == b
}

// checkResources validates every resource parameter of form: each must name
// this server's MCP endpoint. It returns invalid_target otherwise.
func (s *Server) checkResources(form url.Values) error {
	for _, r := range form["resource"] {
		if !sameResource(r, s.resourceURL) {
			return errInvalidTarget("This server only grants access to " + s.resourceURL + ".")
		}
	}
	return nil
}
