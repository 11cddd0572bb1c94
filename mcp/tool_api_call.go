package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

type apiCallIn struct {
	Upstream string `json:"upstream" jsonschema:"the configured upstream's name"`
	Method   string `json:"method" jsonschema:"the HTTP method, one the upstream allows"`
	Path     string `json:"path" jsonschema:"the path (and optional ?query) under one of the upstream's allowed prefixes"`
	Body     string `json:"body,omitempty" jsonschema:"optional request body; sent as application/json when it is JSON"`
}

type apiCallOut struct {
	Status  int               `json:"status" jsonschema:"the upstream's HTTP status code"`
	Headers map[string]string `json:"headers" jsonschema:"the upstream's response headers"`
	Body    string            `json:"body" jsonschema:"the upstream's response body"`
}

func (s *Server) apiCall(ctx context.Context, req *sdk.CallToolRequest, in apiCallIn) (*sdk.CallToolResult, apiCallOut, error) {
	u, ok := s.upstreams[in.Upstream]
	if !ok {
		return nil, apiCallOut{}, fmt.Errorf("api_call: no upstream named %q. %s", in.Upstream, s.upstreamSummary())
	}
	method := strings.ToUpper(in.Method)
	if !slices.Contains(u.Methods, method) {
		return nil, apiCallOut{}, fmt.Errorf("api_call: method %q is not allowed on upstream %q (allowed: %s)", in.Method, u.Name, strings.Join(u.Methods, ", "))
	}
	target, err := u.resolve(in.Path)
	if err != nil {
		return nil, apiCallOut{}, fmt.Errorf("api_call: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, u.Timeout)
	defer cancel()
	var body io.Reader
	if in.Body != "" {
		body = strings.NewReader(in.Body)
	}
	// A fresh request: nothing of the caller's (its token above all)
	// reaches the upstream.
	hreq, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		return nil, apiCallOut{}, fmt.Errorf("api_call: building the request: %w", err)
	}
	hreq.Header.Set("User-Agent", "mcpd")
	if in.Body != "" {
		if json.Valid([]byte(in.Body)) {
			hreq.Header.Set("Content-Type", "application/json")
		} else {
			hreq.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	if u.Auth.Type == "user" {
		tok, err := s.userToken(ctx, u, owner(req))
		if err != nil {
			return nil, apiCallOut{}, err
		}
		hreq.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := u.client.Do(hreq)
	if err != nil {
		if _, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			s.log.WarnContext(ctx, "upstream token request failed", "upstream", u.Name, "err", err)
			return nil, apiCallOut{}, fmt.Errorf("api_call: could not obtain a token for upstream %q", u.Name)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, apiCallOut{}, fmt.Errorf("api_call: upstream %q did not answer within %s", u.Name, u.Timeout)
		}
		s.log.WarnContext(ctx, "upstream request failed", "upstream", u.Name, "err", err)
		return nil, apiCallOut{}, fmt.Errorf("api_call: request to upstream %q failed", u.Name)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, u.MaxResponseBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, apiCallOut{}, fmt.Errorf("api_call: upstream %q did not finish its response within %s", u.Name, u.Timeout)
		}
		return nil, apiCallOut{}, fmt.Errorf("api_call: reading the response of upstream %q failed", u.Name)
	}
	if int64(len(data)) > u.MaxResponseBytes {
		return nil, apiCallOut{}, fmt.Errorf("api_call: the response of upstream %q exceeds %d bytes", u.Name, u.MaxResponseBytes)
	}
	out := apiCallOut{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header))}
	for k, v := range resp.Header {
		if k == "Set-Cookie" {
			continue
		}
		out.Headers[k] = strings.Join(v, ", ")
	}
	if utf8.Valid(data) {
		out.Body = string(data)
	} else {
		out.Body = fmt.Sprintf("(%d bytes of binary data, not shown)", len(data))
	}
	return nil, out, nil
}

// userToken returns the caller's own access token at the upstream's
// identity provider, or a tool error that tells the caller what to do.
func (s *Server) userToken(ctx context.Context, u *upstream, user string) (string, error) {
	idp := u.Auth.IdentityProvider
	if strings.HasPrefix(user, "client:") {
		return "", fmt.Errorf("api_call: upstream %q is called as the signed-in user, and a client_credentials token has no user", u.Name)
	}
	tok, err := s.cfg.UserTokens.UpstreamAccessToken(ctx, user, idp)
	switch {
	case errors.Is(err, ErrSignInRequired):
		return "", fmt.Errorf("api_call: upstream %q is called as you, with your sign-in at the identity provider %q, and mcpd holds none that is still valid "+
			"(you signed in with a password, or that sign-in has ended). Sign in with %q again: open %s/login/idp/%s in your browser, then retry",
			u.Name, idp, idp, s.cfg.Issuer, url.PathEscape(idp))
	case err != nil:
		s.log.WarnContext(ctx, "upstream user token unavailable", "upstream", u.Name, "identity_provider", idp, "err", err)
		return "", fmt.Errorf("api_call: your token at the identity provider %q could not be renewed just now; try again later", idp)
	}
	return tok, nil
}
