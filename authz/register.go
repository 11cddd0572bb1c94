package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
)

// clientMetadata is an RFC 7591 registration request or a client ID
// metadata document. Fields this server does not use are ignored.
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	Contacts                []string `json:"contacts,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
	DPoPBoundAccessTokens   bool     `json:"dpop_bound_access_tokens,omitempty"`
}

// registrationError is an RFC 7591 §3.2.2 error.
type registrationError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *registrationError) Error() string { return e.Code + ": " + e.Description }

func invalidMetadata(format string, args ...any) *registrationError {
	return &registrationError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
}

func invalidRedirect(format string, args ...any) *registrationError {
	return &registrationError{Code: "invalid_redirect_uri", Description: fmt.Sprintf(format, args...)}
}

const (
	maxRedirectURIs = 20
	maxURILength    = 2000
	maxNameLength   = 200
	maxContacts     = 10
)

// parseClientMetadata decodes a registration body or metadata document.
func parseClientMetadata(body []byte) (*clientMetadata, error) {
	var md clientMetadata
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&md); err != nil {
		return nil, invalidMetadata("the body is not a JSON object of client metadata: %v", err)
	}
	if dec.More() {
		return nil, invalidMetadata("the body has data after the JSON object")
	}
	return &md, nil
}

// clientFromMetadata validates md and turns it into a Client (without ID
// or secret). A metadata document may only describe a public client.
func (s *Server) clientFromMetadata(md *clientMetadata, source string) (*Client, error) {
	c := &Client{Source: source}

	c.TokenEndpointAuthMethod = md.TokenEndpointAuthMethod
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2
		if source == SourceMetadata {
			c.TokenEndpointAuthMethod = "none"
		}
	}
	switch c.TokenEndpointAuthMethod {
	case "none", "client_secret_basic", "client_secret_post":
	default:
		return nil, invalidMetadata("token_endpoint_auth_method %q is not supported; use none, client_secret_basic or client_secret_post", c.TokenEndpointAuthMethod)
	}
	if source == SourceMetadata && c.TokenEndpointAuthMethod != "none" {
		return nil, invalidMetadata("a client metadata document must describe a public client (token_endpoint_auth_method none)")
	}
	public := c.TokenEndpointAuthMethod == "none"

	grants := md.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code"}
	}
	for _, g := range grants {
		switch g {
		case "authorization_code", "refresh_token":
		case "client_credentials":
			if public {
				return nil, invalidMetadata("grant type client_credentials needs a confidential client (client_secret_basic or client_secret_post)")
			}
		default:
			return nil, invalidMetadata("grant type %q is not supported; use authorization_code, refresh_token or client_credentials", g)
		}
		if !slices.Contains(c.GrantTypes, g) {
			c.GrantTypes = append(c.GrantTypes, g)
		}
	}
	authCode := slices.Contains(c.GrantTypes, "authorization_code")
	if authCode && !slices.Contains(c.GrantTypes, "refresh_token") {
		// Clients rarely ask for refresh tokens explicitly; give them.
		c.GrantTypes = append(c.GrantTypes, "refresh_token")
	}
	if !authCode && slices.Contains(c.GrantTypes, "refresh_token") && !slices.Contains(c.GrantTypes, "client_credentials") {
		return nil, invalidMetadata("grant type refresh_token needs authorization_code")
	}

	responses := md.ResponseTypes
	if len(responses) == 0 && authCode {
		responses = []string{"code"}
	}
	for _, rt := range responses {
		if rt != "code" {
			return nil, invalidMetadata("response type %q is not supported; use code", rt)
		}
		if !authCode {
			return nil, invalidMetadata("response type code needs grant type authorization_code")
		}
	}
	if len(responses) > 0 {
		c.ResponseTypes = []string{"code"}
	}

	switch md.ApplicationType {
	case "", appTypeNative, appTypeWeb:
		// None sent (Claude Code, older SDKs): every redirect kind is
		// accepted, as before application_type had a meaning here.
		c.ApplicationType = md.ApplicationType
	default:
		return nil, invalidMetadata("application_type %q is not supported; use native or web", md.ApplicationType)
	}

	if authCode && len(md.RedirectURIs) == 0 {
		return nil, invalidRedirect("redirect_uris is required for the authorization_code grant")
	}
	if len(md.RedirectURIs) > maxRedirectURIs {
		return nil, invalidRedirect("at most %d redirect_uris are allowed", maxRedirectURIs)
	}
	for _, u := range md.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, err
		}
		if err := checkRedirectForType(u, c.ApplicationType); err != nil {
			return nil, err
		}
		if !slices.Contains(c.RedirectURIs, u) {
			c.RedirectURIs = append(c.RedirectURIs, u)
		}
	}

	if err := checkText("client_name", md.ClientName); err != nil {
		return nil, err
	}
	c.Name = md.ClientName
	for field, v := range map[string]string{"client_uri": md.ClientURI, "logo_uri": md.LogoURI} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(v) > maxURILength || !plainASCII(v) {
			return nil, invalidMetadata("%s must be an http(s) URL", field)
		}
	}
	c.URI, c.LogoURI = md.ClientURI, md.LogoURI
	if len(md.Contacts) > maxContacts {
		return nil, invalidMetadata("at most %d contacts are allowed", maxContacts)
	}
	for _, ct := range md.Contacts {
		if err := checkText("contacts", ct); err != nil {
			return nil, err
		}
	}
	c.Contacts = slices.Clone(md.Contacts)

	if md.DPoPBoundAccessTokens && s.dpop == nil {
		return nil, invalidMetadata("dpop_bound_access_tokens: this server does not offer DPoP")
	}
	c.DPoPBoundAccessTokens = md.DPoPBoundAccessTokens

	c.Scopes = s.knownScopes(strings.Fields(md.Scope))
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(s.scopeOrder)
	}
	return c, nil
}

func checkText(field, v string) error {
	if len(v) > maxNameLength {
		return invalidMetadata("%s is longer than %d bytes", field, maxNameLength)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return invalidMetadata("%s contains a control character or invalid UTF-8", field)
		}
		// Bidirectional overrides and isolates can make a name read as
		// another on the consent page.
		if unicode.Is(unicode.Bidi_Control, r) {
			return invalidMetadata("%s contains a bidirectional control character", field)
		}
	}
	return nil
}

// plainASCII reports whether s is printable ASCII without spaces, as a
// URI is (RFC 3986 §2): anything else a client means must be
// percent-encoded, and what is stored is then sent back byte for byte in
// Location headers and pages.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Application types of OpenID Connect Dynamic Client Registration §2, which
// MCP 2026-07-28 asks clients to send (SEP-837).
const (
	appTypeNative = "native"
	appTypeWeb    = "web"
)

// checkRedirectForType applies the application type's redirect rule to a
// URI checkRedirectURI accepted. A native application (RFC 8252) may use
// loopback http, a private-use scheme and a claimed https URI (§7.1-7.3;
// VS Code registers https://vscode.dev/redirect next to its loopback
// ones). A web application is reached over https; http only on a
// localhost-style development host, as OpenID Connect registration allows,
// and never through a private-use scheme, which no web server answers.
// With no type given every kind is accepted.
func checkRedirectForType(raw, appType string) error {
	if appType != appTypeWeb {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalidRedirect("redirect URI %q is not a valid URI", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http": // checkRedirectURI allows http on loopback only
		return nil
	}
	return invalidRedirect("redirect URI %q uses the private-use scheme %s:, which only a native application may register; register with application_type native, or use an https redirect URI", raw, u.Scheme)
}

// checkRedirectURI accepts https, loopback http (127.0.0.1, [::1],
// localhost) and private-use schemes (cursor://…, vscode://…), never with
// a fragment.
func checkRedirectURI(raw string) error {
	if len(raw) > maxURILength {
		return invalidRedirect("redirect URI is longer than %d bytes", maxURILength)
	}
	if !plainASCII(raw) {
		return invalidRedirect("redirect URI %q must be printable ASCII without spaces (percent-encode anything else)", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return invalidRedirect("redirect URI %q is not an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalidRedirect("redirect URI %q must not contain a fragment", raw)
	}
	if u.User != nil {
		return invalidRedirect("redirect URI %q must not contain user information", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" {
			return invalidRedirect("redirect URI %q has no host", raw)
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return invalidRedirect("redirect URI %q uses http on a host other than 127.0.0.1, [::1] or localhost; use https", raw)
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "ws", "wss", "ftp":
		return invalidRedirect("redirect URI %q uses a forbidden scheme", raw)
	default:
		if scheme != u.Scheme {
			return invalidRedirect("redirect URI %q must use a lower-case scheme", raw)
		}
	}
	if !fosite.IsValidRedirectURI(u) {
		return invalidRedirect("redirect URI %q is not a valid URI", raw)
	}
	return nil
}

// registrationResponse is the RFC 7591 §3.2.1 answer.
type registrationResponse struct {
	clientMetadata
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
}

func (s *Server) responseFor(c *Client, secret, regToken string) registrationResponse {
	resp := registrationResponse{
		clientMetadata: clientMetadata{
			ClientID:                c.ID,
			ClientSecret:            secret,
			RedirectURIs:            c.RedirectURIs,
			TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
			GrantTypes:              c.GrantTypes,
			ResponseTypes:           c.ResponseTypes,
			ClientName:              c.Name,
			ClientURI:               c.URI,
			LogoURI:                 c.LogoURI,
			Scope:                   strings.Join(c.Scopes, " "),
			Contacts:                c.Contacts,
			ApplicationType:         c.ApplicationType,
			DPoPBoundAccessTokens:   c.DPoPBoundAccessTokens,
		},
		ClientIDIssuedAt:        c.CreatedAt.Unix(),
		RegistrationAccessToken: regToken,
		RegistrationClientURI:   s.issuer + "/register/" + url.PathEscape(c.ID),
	}
	if !c.IsPublic() {
		zero := int64(0)
		resp.ClientSecretExpiresAt = &zero
	}
	return resp
}

// handleRegister is RFC 7591 dynamic client registration.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if !s.registrations.Allow(s.limitKey(r)) {
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusTooManyRequests, registrationError{Code: "temporarily_unavailable", Description: "too many registrations from this address; try again in a minute"})
		return
	}
	if !s.registrationsAll.allowAll() {
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusTooManyRequests, registrationError{Code: "temporarily_unavailable", Description: "too many registrations right now; try again in a minute"})
		return
	}
	if r.ContentLength > maxJSONBody {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestEntityTooLarge, invalidMetadata("the body is larger than %d bytes", maxJSONBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestEntityTooLarge, invalidMetadata("the body is larger than %d bytes", maxJSONBody))
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, invalidMetadata("the body could not be read"))
		return
	}
	md, err := parseClientMetadata(body)
	if err == nil && md.ClientID != "" {
		err = invalidMetadata("client_id is assigned by the server")
	}
	var c *Client
	if err == nil {
		c, err = s.clientFromMetadata(md, SourceDynamic)
	}
	if err != nil {
		var re *registrationError
		if !errors.As(err, &re) {
			re = invalidMetadata("%v", err)
		}
		writeJSON(w, http.StatusBadRequest, re)
		return
	}
	n, err := s.store.CountClients(ctx)
	if errors.Is(err, ErrUnavailable) { // the storage logs why
		s.writeRegisterUnavailable(w)
		return
	}
	if err != nil {
		s.log.Error("register: counting clients failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, registrationError{Code: "server_error"})
		return
	}
	if n >= s.cfg.MaxClients {
		writeJSON(w, http.StatusServiceUnavailable, registrationError{Code: "temporarily_unavailable", Description: "the server has reached its limit of registered clients"})
		return
	}
	secret, regToken, err := s.createClient(ctx, c)
	if errors.Is(err, ErrUnavailable) { // the storage logs why
		s.writeRegisterUnavailable(w)
		return
	}
	if err != nil {
		s.log.Error("register: storing client failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, registrationError{Code: "server_error"})
		return
	}
	s.obs.ClientRegistered(SourceDynamic)
	s.log.Info("client registered", "client_id", c.ID, "name", c.Name, "auth_method", c.TokenEndpointAuthMethod)
	writeJSON(w, http.StatusCreated, s.responseFor(c, secret, regToken))
}

// createClient assigns an id, a secret for confidential clients and a
// registration access token, stores their hashes and the client.
func (s *Server) createClient(ctx context.Context, c *Client) (secret, regToken string, err error) {
	if !c.IsPublic() {
		secret = randomToken(32)
		if c.SecretHash, err = s.hasher.Hash(ctx, []byte(secret)); err != nil {
			return "", "", err
		}
	}
	regToken = randomToken(32)
	if c.RegistrationTokenHash, err = s.hasher.Hash(ctx, []byte(regToken)); err != nil {
		return "", "", err
	}
	c.CreatedAt = s.now().UTC().Truncate(time.Second)
	for range 3 {
		c.ID = newClientID()
		err = s.store.CreateClient(ctx, c)
		if !errors.Is(err, ErrAlreadyExists) {
			break
		}
	}
	return secret, regToken, err
}

// handleRegistration is RFC 7592 read (GET) and delete (DELETE) of a
// registration, authorized by its registration access token.
func (s *Server) handleRegistration(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	id := mux.Vars(r)["id"]
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var c *Client
	if ok && token != "" {
		var err error
		c, err = s.store.LookupClient(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("registration: lookup failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, registrationError{Code: "server_error"})
			return
		}
	}
	if c == nil || c.Source != SourceDynamic || s.hasher.Compare(ctx, c.RegistrationTokenHash, []byte(token)) != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, registrationError{Code: "invalid_token", Description: "the registration access token is invalid"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.responseFor(c, "", ""))
	case http.MethodDelete:
		if err := s.store.DeleteClient(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("registration: delete failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, registrationError{Code: "server_error"})
			return
		}
		s.log.Info("client deleted its registration", "client_id", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// writeRegisterUnavailable answers a registration the storage cannot take
// now: 503 temporarily_unavailable with Retry-After.
func (s *Server) writeRegisterUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", retryAfter)
	writeJSON(w, http.StatusServiceUnavailable, registrationError{Code: "temporarily_unavailable", Description: "the server cannot store a registration right now (its storage is full or unavailable); try again later"})
}
