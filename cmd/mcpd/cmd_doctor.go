package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpd/mcpd/authz"
)

// check is one finding of `mcpd doctor`.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// printChecks prints one line a check: "ok  " or "FAIL", its name, and its
// detail after a colon.
func (e cliEnv) printChecks(checks []check) {
	for _, c := range checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		line := mark + " " + c.Name
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(e.stdout, line)
	}
}

const doctorUsage = `Usage: mcpd doctor [--issuer URL] [--json] [--cimd-probe URL]
       mcpd doctor --data DIR [--json]
       mcpd doctor --database URL [--json]

Fetches the server's /mcp challenge, protected-resource metadata and
authorization-server metadata the way a strict MCP client does, and names
everything a client would trip on. URL is what clients are given, less /mcp
(default: MCPD_ISSUER, else http://LISTEN).

When the server accepts client ID metadata documents, doctor also fetches
one from this machine (default: VS Code's), as the server must on a client's
first connection: run it where mcpd runs.

With --data, checks the database DIR/mcpd.db instead: every page of it,
with reads that cannot crash on a damaged file, then bbolt's consistency
check, and prints its size and what its records take. With the server
running it asks the server to check its open file.

With --database, checks the PostgreSQL database URL instead: that it
answers, that its schema is one this mcpd reads (it brings an older one up
to date, as serve would), and that a write commits.`

// vscodeMetadataDocument is the client ID metadata document VS Code uses
// whenever a server advertises them.
const vscodeMetadataDocument = "https://vscode.dev/oauth/client-metadata.json"

func (e cliEnv) doctor(args []string) error {
	fs := newFlagSet("doctor", e.stderr, doctorUsage)
	listen := e.getenv("MCPD_LISTEN")
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	def := e.getenv("MCPD_ISSUER")
	if def == "" {
		if host, port, err := net.SplitHostPort(listen); err == nil {
			def = "http://" + net.JoinHostPort(loopbackFor(host), port)
		}
	}
	issuer := fs.String("issuer", def, "base URL clients use (env MCPD_ISSUER)")
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each request")
	probe := fs.String("cimd-probe", vscodeMetadataDocument, "client ID metadata document to fetch when the server accepts them; empty skips the check")
	data := fs.String("data", "", "check the database in this data directory instead of a server")
	database := fs.String("database", "", "check this PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DB) instead of a server")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("doctor takes no arguments")
	}
	switch {
	case *data != "" && *database != "":
		return usageError("doctor checks --data or --database, not both")
	case *data != "":
		return e.doctorData(*data, *asJSON)
	case *database != "":
		return e.doctorDatabase(*database, *asJSON)
	}
	allowPrivate, _ := strconv.ParseBool(e.getenv("MCPD_ALLOW_PRIVATE_METADATA_HOSTS"))
	d := doctor{base: *issuer, cimdProbe: *probe, allowPrivate: allowPrivate, hc: &http.Client{Timeout: *timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a strict client follows no redirect for metadata
	}}}
	checks := d.run(e.ctx)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if *asJSON {
		if err := e.printJSON(checks); err != nil {
			return err
		}
	} else {
		e.printChecks(checks)
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d of %d checks failed", failed, len(checks))
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "all %d checks passed\n", len(checks))
	}
	return nil
}

// doctor checks one server from the outside.
type doctor struct {
	base   string
	hc     *http.Client
	checks []check

	// cimdProbe is the client ID metadata document fetched when the
	// server accepts them; "" skips that check. cimdClient fetches it (nil:
	// the server's own metadata client, refusing internal addresses unless
	// allowPrivate).
	cimdProbe    string
	cimdClient   *http.Client
	allowPrivate bool
}

func (d *doctor) add(name string, ok bool, detail string, args ...any) bool {
	c := check{Name: name, OK: ok}
	if !ok {
		c.Detail = fmt.Sprintf(detail, args...)
	}
	d.checks = append(d.checks, c)
	return ok
}

func (d *doctor) run(ctx context.Context) []check {
	base := d.base
	if strings.HasSuffix(base, "/") {
		d.add("issuer URL has no trailing slash", false, "%q ends in a slash; clients compare the issuer byte for byte, so configure it without one", base)
		base = strings.TrimRight(base, "/")
	}
	mcpURL := base + "/mcp"
	bu, err := url.Parse(base)
	if !d.add("issuer URL is an absolute http(s) URL", err == nil && (bu.Scheme == "http" || bu.Scheme == "https") && bu.Host != "", "%q", base) {
		return d.checks
	}
	// MCP 2026-07-28: every authorization server endpoint is served over
	// https; plain http is for this machine only.
	d.add("issuer uses https, or http on loopback only", bu.Scheme == "https" || isLoopbackName(bu.Hostname()),
		"%q is plain http on a network: tokens and passwords would cross it in clear; put mcpd behind an https reverse proxy and set --issuer https://…", base)
	// RFC 8414 §3.1 and RFC 9728 §3.1 insert the well-known string between
	// the host and the issuer's path.
	origin, issuerPath := bu.Scheme+"://"+bu.Host, strings.TrimSuffix(bu.Path, "/")

	// 1. The 401 challenge an unauthenticated client gets first.
	prmURL := ""
	body := strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcpd-doctor","version":"1"}}}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := d.hc.Do(req)
	if !d.add("POST /mcp without a token answers", err == nil, "%v", err) {
		return d.checks
	}
	resp.Body.Close()
	d.add("POST /mcp without a token is 401", resp.StatusCode == http.StatusUnauthorized, "got %s; clients fall back to old transports on other statuses", resp.Status)
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if d.add("401 carries a Bearer challenge", err == nil && len(challenges) > 0 && strings.EqualFold(challenges[0].Scheme, "bearer"), "WWW-Authenticate %q", resp.Header.Values("WWW-Authenticate")) {
		prmURL = challenges[0].Params["resource_metadata"]
		d.add("challenge names resource_metadata", prmURL != "", "no resource_metadata parameter")
		d.add("challenge names scope", challenges[0].Params["scope"] != "", "no scope parameter; clients then ask for no scope")
	}
	wellKnown := base + "/.well-known/oauth-protected-resource/mcp"
	if prmURL == "" {
		prmURL = wellKnown
	}
	d.add("resource_metadata is the well-known PRM URL", prmURL == wellKnown, "challenge says %q; want %q", prmURL, wellKnown)

	// 2. Protected-resource metadata (RFC 9728).
	var prm oauthex.ProtectedResourceMetadata
	if d.getJSON(ctx, "protected-resource metadata", prmURL, &prm) {
		d.add("PRM resource is the MCP URL", prm.Resource == mcpURL, "resource %q; want %q (clients reject a mismatch)", prm.Resource, mcpURL)
		d.add("PRM names the authorization server", slices.Contains(prm.AuthorizationServers, base), "authorization_servers %q; want to contain %q", prm.AuthorizationServers, base)
		d.add("PRM bearer_methods_supported is [header]", slices.Equal(prm.BearerMethodsSupported, []string{"header"}), "got %q", prm.BearerMethodsSupported)
		d.add("PRM lists scopes_supported", len(prm.ScopesSupported) > 0, "empty")
		d.add("PRM does not list offline_access (SEP-2207)", !slices.Contains(prm.ScopesSupported, "offline_access"), "scopes_supported %q", prm.ScopesSupported)
	}
	if issuerPath != "" {
		// Clients without a challenge try the RFC 9728 location first.
		rfcPRM := origin + "/.well-known/oauth-protected-resource" + issuerPath + "/mcp"
		d.wellKnownAtRoot(ctx, "protected-resource metadata at the RFC 9728 location", rfcPRM, issuerPath)
	}

	// 3. Authorization-server metadata (RFC 8414), where strict clients
	// look first: the well-known string inserted before the issuer's path.
	var asm oauthex.AuthServerMeta
	asmURL := origin + "/.well-known/oauth-authorization-server" + issuerPath
	asmOK := false
	if issuerPath == "" {
		asmOK = d.getJSON(ctx, "authorization-server metadata", asmURL, &asm)
	} else if d.wellKnownAtRoot(ctx, "authorization-server metadata at the RFC 8414 location", asmURL, issuerPath) {
		asmOK = d.getJSON(ctx, "authorization-server metadata", asmURL, &asm)
	}
	if asmOK {
		d.checkASMetadata("AS", asm, base)
	}

	// OpenID Connect discovery, which MCP clients try next (SEP-2351): at
	// the root, or with a path inserted and appended.
	oidcURLs := []string{origin + "/.well-known/openid-configuration"}
	if issuerPath != "" {
		oidcURLs = []string{origin + "/.well-known/openid-configuration" + issuerPath, base + "/.well-known/openid-configuration"}
	}
	for i, u := range oidcURLs {
		what, label := "OpenID Connect discovery document", "OpenID"
		if issuerPath != "" && i == 0 {
			if !d.wellKnownAtRoot(ctx, what+" at the path-inserted location", u, issuerPath) {
				continue
			}
			what, label = what+" (path inserted)", label+" (path inserted)"
		} else if issuerPath != "" {
			what, label = what+" (path appended)", label+" (path appended)"
		}
		var oidc struct {
			oauthex.AuthServerMeta
			JWKSURI               string   `json:"jwks_uri"`
			SubjectTypesSupported []string `json:"subject_types_supported"`
			IDTokenSigningAlgs    []string `json:"id_token_signing_alg_values_supported"`
		}
		if d.getJSON(ctx, what, u, &oidc) {
			d.checkASMetadata(label, oidc.AuthServerMeta, base)
			d.add(what+" has the members OpenID Connect requires", oidc.JWKSURI != "" && oidc.SubjectTypesSupported != nil && oidc.IDTokenSigningAlgs != nil,
				"jwks_uri, subject_types_supported or id_token_signing_alg_values_supported is missing; clients that read it as OpenID Connect refuse it")
		}
		if !asmOK && issuerPath != "" && i == len(oidcURLs)-1 {
			// Without RFC 8414 metadata the rest reads this document.
			asm, asmOK = oidc.AuthServerMeta, oidc.Issuer != ""
		}
	}

	// Client ID metadata documents: VS Code uses one whenever they are
	// advertised, and the server must fetch it on the first connection.
	if asmOK && d.cimdProbe != "" {
		if asm.ClientIDMetadataDocumentSupported {
			err := authz.ProbeClientMetadataDocument(ctx, d.cimdClient, d.allowPrivate, d.cimdProbe)
			d.add("client metadata documents can be fetched from this machine", err == nil,
				"the server accepts client ID metadata documents (client_id_metadata_document_supported), but fetching %s from here failed: %v. VS Code uses that document whenever the server advertises them, so its first connection would end on an error page. Without internet access, run mcpd serve with --client-metadata-documents false (or MCPD_CLIENT_METADATA_DOCUMENTS=false): VS Code then registers itself",
				d.cimdProbe, err)
		} else {
			d.add("client metadata documents are off: clients register themselves", true, "")
		}
	}

	// 4. CORS for browser-based clients such as MCP Inspector.
	browser := "http://localhost:6274"
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/oauth-authorization-server", nil)
	req.Header.Set("Origin", browser)
	if resp, err := d.hc.Do(req); d.add("metadata answers a cross-origin GET", err == nil, "%v", err) {
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		d.add("metadata allows browser clients (CORS)", acao == "*" || acao == browser, "Access-Control-Allow-Origin %q", acao)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodOptions, base+"/token", nil)
	req.Header.Set("Origin", browser)
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	if resp, err := d.hc.Do(req); d.add("token endpoint answers a CORS preflight", err == nil, "%v", err) {
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		d.add("token endpoint allows browser clients (CORS)", resp.StatusCode < 300 && (acao == "*" || acao == browser), "%s, Access-Control-Allow-Origin %q", resp.Status, acao)
	}
	return d.checks
}

// checkASMetadata checks an RFC 8414 or OpenID Connect document of the
// issuer base; what names it in the findings.
func (d *doctor) checkASMetadata(what string, asm oauthex.AuthServerMeta, base string) {
	d.add(what+" issuer equals the URL byte for byte", asm.Issuer == base, "issuer %q; clients fetched it from %q and reject the mismatch (check --issuer)", asm.Issuer, base)
	for _, ep := range []struct{ name, got, path string }{
		{"authorization_endpoint", asm.AuthorizationEndpoint, "/authorize"},
		{"token_endpoint", asm.TokenEndpoint, "/token"},
		{"registration_endpoint", asm.RegistrationEndpoint, "/register"},
		{"revocation_endpoint", asm.RevocationEndpoint, "/revoke"},
		{"introspection_endpoint", asm.IntrospectionEndpoint, "/introspect"},
	} {
		d.add(what+" "+ep.name+" is under the issuer", ep.got == base+ep.path, "got %q; want %q", ep.got, base+ep.path)
	}
	d.add(what+" S256 is the PKCE method", slices.Equal(asm.CodeChallengeMethodsSupported, []string{"S256"}), "code_challenge_methods_supported %q", asm.CodeChallengeMethodsSupported)
	d.add(what+" response_types_supported is [code]", slices.Equal(asm.ResponseTypesSupported, []string{"code"}), "got %q", asm.ResponseTypesSupported)
	d.add(what+" refresh_token grant advertised", slices.Contains(asm.GrantTypesSupported, "refresh_token"), "grant_types_supported %q", asm.GrantTypesSupported)
	d.add(what+" iss parameter advertised (RFC 9207)", asm.AuthorizationResponseIssParameterSupported, "authorization_response_iss_parameter_supported is false")
}

// wellKnownAtRoot checks that a well-known URL at the host's root, outside
// the issuer's path, reaches mcpd: a proxy that serves mcpd under that
// path must forward it too.
func (d *doctor) wellKnownAtRoot(ctx context.Context, what, u, issuerPath string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return d.add(what+" answers", false, "%v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return d.add(what+" answers", false, "%v", err)
	}
	resp.Body.Close()
	return d.add(what+" answers", resp.StatusCode == http.StatusOK,
		"GET %s: %s; a reverse proxy that serves mcpd under %s must also forward /.well-known/…%s… to it unchanged (docs/operations.md, \"Behind a reverse proxy\")",
		u, resp.Status, issuerPath, issuerPath)
}

// isLoopbackName reports whether host names this machine's loopback.
func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// getJSON fetches url as a strict client does (with MCP-Protocol-Version,
// no redirects) and decodes it into v.
func (d *doctor) getJSON(ctx context.Context, what, url string, v any) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if !d.add(what+" URL is valid", err == nil, "%v", err) {
		return false
	}
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	req.Header.Set("Accept", "application/json")
	resp, err := d.hc.Do(req)
	if !d.add(what+" answers", err == nil, "%v", err) {
		return false
	}
	defer resp.Body.Close()
	if !d.add(what+" is 200", resp.StatusCode == http.StatusOK, "GET %s: %s", url, resp.Status) {
		return false
	}
	ct := resp.Header.Get("Content-Type")
	d.add(what+" is JSON", strings.HasPrefix(ct, "application/json"), "Content-Type %q", ct)
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	return d.add(what+" parses", err == nil, "%v", err)
}
