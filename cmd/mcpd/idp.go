package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/idp/github"
	"github.com/mcpd/mcpd/idp/oidc"
	"github.com/mcpd/mcpd/idp/vault"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

// identityProviderFile is one entry of the config file's
// "identity_providers", as the file spells it.
type identityProviderFile struct {
	Name                string   `json:"name"`
	DisplayName         string   `json:"display_name"`
	Type                string   `json:"type"`
	Issuer              string   `json:"issuer"`
	ClientID            string   `json:"client_id"`
	ClientSecretEnv     string   `json:"client_secret_env"`
	ClientSecretFile    string   `json:"client_secret_file"`
	Scopes              []string `json:"scopes"`
	AllowedEmails       []string `json:"allowed_emails"`
	AllowedEmailDomains []string `json:"allowed_email_domains"`
	AllowedOrgs         []string `json:"allowed_orgs"`
	CreateUsers         bool     `json:"create_users"`
}

// redacted is a secret that prints as [redacted], in logs and %v alike.
type redacted string

func (redacted) String() string               { return "[redacted]" }
func (redacted) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (redacted) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
func (r redacted) Format(f fmt.State, _ rune) { f.Write([]byte(r.String())) }

// reveal returns the secret itself, for the connector that sends it.
func (r redacted) reveal() string { return string(r) }

// identityProvider is a checked identity provider with its secret read.
type identityProvider struct {
	identityProviderFile
	ClientSecret redacted
}

// Identity provider types.
const (
	idpTypeOIDC   = "oidc"
	idpTypeGitHub = "github"
)

// parseIdentityProviders reads the config file's identity_providers. It
// refuses unknown keys, and names client_secret in particular: a secret
// never lives in the file.
func parseIdentityProviders(raw json.RawMessage) ([]identityProviderFile, error) {
	var generic []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, fmt.Errorf("identity_providers: want a list of objects: %w", err)
	}
	for i, g := range generic {
		if _, ok := g["client_secret"]; ok {
			return nil, fmt.Errorf("identity_providers[%d]: client_secret is not allowed in the file; put the secret in an environment variable (client_secret_env) or a file (client_secret_file)", i)
		}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var out []identityProviderFile
	if err := d.Decode(&out); err != nil {
		return nil, fmt.Errorf("identity_providers: %w", err)
	}
	return out, nil
}

// checkIdentityProviders validates the providers, reads their secrets
// (from the environment through getenv, or from files), and checks that
// every upstream of auth type "user" names one of them.
func (c *serveConfig) checkIdentityProviders(getenv func(string) string) error {
	names := map[string]bool{}
	c.IdentityProviders = c.IdentityProviders[:0]
	for i, p := range c.identityProviderFiles {
		where := fmt.Sprintf("identity_providers[%d]", i)
		if p.Name != "" {
			where += " (" + p.Name + ")"
		}
		bad := func(format string, args ...any) error {
			return usageError(fmt.Sprintf("invalid %s: %s", where, fmt.Sprintf(format, args...)))
		}
		if !authz.ValidProviderName(p.Name) {
			return bad("name %q must be 1 to 64 letters, digits, '-' or '_'", p.Name)
		}
		if names[p.Name] {
			return bad("name %q is used twice", p.Name)
		}
		names[p.Name] = true
		switch p.Type {
		case idpTypeOIDC:
			if p.Issuer == "" {
				return bad("type oidc needs issuer (the provider's issuer URL)")
			}
			if len(p.AllowedOrgs) > 0 {
				return bad("allowed_orgs applies to type github only")
			}
		case idpTypeGitHub:
		default:
			return bad("type %q is not oidc or github", p.Type)
		}
		if p.Issuer != "" {
			if err := checkProviderURL(p.Issuer); err != nil {
				return bad("issuer %q: %v", p.Issuer, err)
			}
		}
		if p.ClientID == "" {
			return bad("client_id is required")
		}
		var secret string
		switch {
		case p.ClientSecretEnv != "" && p.ClientSecretFile != "":
			return bad("give client_secret_env or client_secret_file, not both")
		case p.ClientSecretEnv != "":
			if secret = getenv(p.ClientSecretEnv); secret == "" {
				return bad("the environment variable %s (client_secret_env) is not set", p.ClientSecretEnv)
			}
		case p.ClientSecretFile != "":
			b, err := os.ReadFile(p.ClientSecretFile)
			if err != nil {
				return bad("client_secret_file: %v", err)
			}
			if secret = strings.TrimRight(string(b), "\r\n"); secret == "" {
				return bad("client_secret_file %s is empty", p.ClientSecretFile)
			}
		default:
			return bad("client_secret_env or client_secret_file is required")
		}
		for _, e := range p.AllowedEmails {
			if _, err := store.NormalizeEmail(e); err != nil {
				return bad("allowed_emails: %q is not an email address", e)
			}
		}
		for _, d := range p.AllowedEmailDomains {
			if d == "" || strings.ContainsAny(d, "@ /") {
				return bad("allowed_email_domains: %q is not a domain", d)
			}
		}
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		c.IdentityProviders = append(c.IdentityProviders, identityProvider{identityProviderFile: p, ClientSecret: redacted(secret)})
	}
	for i, u := range c.Upstreams {
		if u.Auth.Type == "user" && !names[u.Auth.IdentityProvider] {
			return usageError(fmt.Sprintf("invalid upstreams[%d] (%s): auth type user names identity_provider %q, which identity_providers does not declare", i, u.Name, u.Auth.IdentityProvider))
		}
	}
	return nil
}

// checkProviderURL wants https, or http on a loopback host (a provider on
// the same machine, as in tests).
func checkProviderURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("want an absolute URL without query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("want https (http only on a loopback host)")
	}
	return fmt.Errorf("want an https URL")
}

// githubAPIURL is the REST API of a GitHub at base: api.github.com for
// github.com, BASE/api/v3 for GitHub Enterprise Server.
func githubAPIURL(base string) string {
	if base == "" || base == github.DefaultBaseURL {
		return github.DefaultAPIURL
	}
	return strings.TrimSuffix(base, "/") + "/api/v3"
}

// identityProviders builds the connectors of cfg, the authz configuration
// of each, and the vault that keeps their users' upstream tokens. It makes
// no network call: OpenID providers are discovered at the first sign-in.
func (s *server) identityProviders(ctx context.Context, cfg *serveConfig, logger *slog.Logger) ([]authz.IdentityProvider, *vault.Vault, error) {
	if len(cfg.IdentityProviders) == 0 {
		return nil, nil, nil
	}
	hc := &http.Client{Timeout: cfg.IDPTimeout}
	refreshers := map[string]vault.Refresher{}
	var out []authz.IdentityProvider
	for _, p := range cfg.IdentityProviders {
		var (
			conn vault.Refresher
			wc   wire.Connector
		)
		switch p.Type {
		case idpTypeOIDC:
			c, err := oidc.New(oidc.Config{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret.reveal(), Scopes: p.Scopes, HTTPClient: hc})
			if err != nil {
				return nil, nil, usageError(fmt.Sprintf("identity provider %s: %v", p.Name, err))
			}
			conn, wc = c, wire.Connector{C: c}
		case idpTypeGitHub:
			c, err := github.New(github.Config{
				ClientID: p.ClientID, ClientSecret: p.ClientSecret.reveal(), Scopes: p.Scopes,
				BaseURL: p.Issuer, APIURL: githubAPIURL(p.Issuer), FetchOrgs: len(p.AllowedOrgs) > 0, HTTPClient: hc,
			})
			if err != nil {
				return nil, nil, usageError(fmt.Sprintf("identity provider %s: %v", p.Name, err))
			}
			conn, wc = c, wire.Connector{C: c}
		}
		if p.ClientSecretFile != "" {
			// Not refused: Kubernetes and Docker mount secrets 0644 and
			// 0444 unless told otherwise. But said, at every start.
			if fi, err := os.Stat(p.ClientSecretFile); err == nil && fi.Mode().Perm()&0o007 != 0 {
				logger.Warn("the client secret file of an identity provider is open to every user of this machine; make it readable by mcpd only (chmod 600, or defaultMode 0400 for a Kubernetes secret)",
					"provider", p.Name, "file", p.ClientSecretFile, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
			}
		}
		refreshers[p.Name] = conn
		out = append(out, authz.IdentityProvider{
			Name: p.Name, DisplayName: p.DisplayName, Connector: wc,
			AllowedEmails: p.AllowedEmails, AllowedEmailDomains: p.AllowedEmailDomains, AllowedOrgs: p.AllowedOrgs,
			CreateUsers: p.CreateUsers,
		})
	}
	key, err := s.store.Secret(ctx, "upstream-token-key", 32)
	if err != nil {
		return nil, nil, err
	}
	v, err := vault.New(vault.Config{Key: key, Store: wire.VaultStore{S: s.store}, Refreshers: refreshers, Now: cfg.now, Logger: logger.With("component", "vault")})
	if err != nil {
		return nil, nil, err
	}
	return out, v, nil
}

// upstreamTokenSaver and mcpUserTokens hand the vault's adapter to authz
// and mcp, or a nil interface when no provider is configured.
func upstreamTokenSaver(u *wire.UserTokens) authz.UpstreamTokenSaver {
	if u == nil {
		return nil
	}
	return *u
}

func mcpUserTokens(u *wire.UserTokens) mcp.UserTokens {
	if u == nil {
		return nil
	}
	return *u
}
