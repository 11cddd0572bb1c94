package authz

import (
	"net/http"
	"strings"

	"github.com/ory/fosite"
)

// handleIntrospect is RFC 7662 introspection, answered only to
// authenticated confidential clients (§2.1).
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	switch parseForm(w, r) {
	case http.StatusRequestEntityTooLarge:
		writeTooLarge(w)
		return
	case http.StatusBadRequest:
		s.oauth.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The request body could not be read."))
		return
	}
	client, err := s.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err == nil && client.IsPublic() {
		err = fosite.ErrInvalidClient.WithHint("Only confidential clients may introspect tokens.")
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpd"`)
		s.oauth.WriteAccessError(ctx, w, nil, fosite.ErrorToRFC6749Error(err).WithWrap(err))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		s.oauth.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The token parameter is missing."))
		return
	}
	use := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	if use == "" {
		use = fosite.AccessToken
	}
	tu, ar, err := s.oauth.IntrospectToken(ctx, token, use, &fosite.DefaultSession{})
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	clientID := ""
	if c := ar.GetClient(); c != nil {
		clientID = c.GetID()
	}
	out := map[string]any{
		"active":     true,
		"client_id":  clientID,
		"scope":      strings.Join(ar.GetGrantedScopes(), " "),
		"aud":        []string(ar.GetGrantedAudience()),
		"iss":        s.issuer,
		"iat":        ar.GetRequestedAt().Unix(),
		"token_type": "Bearer",
	}
	if tu == fosite.RefreshToken {
		out["token_type"] = "refresh_token"
	}
	if ds, ok := ar.GetSession().(*fosite.DefaultSession); ok {
		if jkt := sessionJKT(ds); jkt != "" {
			out["cnf"] = map[string]string{"jkt": jkt}
			if tu == fosite.AccessToken {
				out["token_type"] = tokenTypeDPoP
			}
		}
	}
	if sess := ar.GetSession(); sess != nil {
		if sub := sess.GetSubject(); sub != "" {
			out["sub"] = sub
			out["username"] = sub
		}
		if exp := sess.GetExpiresAt(tu); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
	}
	writeJSON(w, http.StatusOK, out)
}
