package main

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"
)

// issuerPath is the path of the issuer URL ("/mcpd" for
// https://host/mcpd), "" when it has none.
func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return u.Path
}

// acceptIssuerPath serves r both as a reverse proxy that strips the
// issuer's path sends requests (/authorize) and as one that passes them on
// unchanged (/mcpd/authorize): a request no route matches whose path
// starts with the issuer's path is served without it. A route that
// matches as sent always wins, so nothing mcpd serves at its root moves.
func acceptIssuerPath(r *mux.Router, prefix string) http.Handler {
	if prefix == "" {
		return r
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rest, ok := strings.CutPrefix(req.URL.Path, prefix)
		if ok && strings.HasPrefix(rest, "/") {
			var m mux.RouteMatch
			matched := r.Match(req, &m)
			if (!matched && m.MatchErr != mux.ErrMethodMismatch) || m.MatchErr == mux.ErrNotFound {
				req2 := req.Clone(req.Context())
				req2.URL.Path = rest
				req2.URL.RawPath = ""
				if raw, ok := strings.CutPrefix(req.URL.RawPath, prefix); ok {
					req2.URL.RawPath = raw
				}
				req = req2
			}
		}
		r.ServeHTTP(w, req)
	})
}
