package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// check is one finding of `mcpd doctor`.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

const doctorUsage = `Usage: mcpd doctor [--issuer URL] [--json]
       mcpd doctor --data DIR [--json]

Fetches the server's /mcp challenge, protected-resource metadata and
authorization-server metadata the way a strict MCP client does, and names
everything a client would trip on. URL is what clients are given, less /mcp
(default: MCPD_ISSUER, else http://LISTEN).

With --data, checks the database DIR/mcpd.db instead: every page of it,
with reads that cannot crash on a damaged file, then bbolt's consistency
check, and prints its size and what its records take. With the server
running it asks the server to check its open file.`

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
	data := fs.String("data", "", "check the database in this data directory instead of a server")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("doctor takes no arguments")
	}
	if *data != "" {
		return e.doctorData(*data, *asJSON)
	}
	d := doctor{base: *issuer, hc: &http.Client{Timeout: *timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
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
	}

	// 3. Authorization-server metadata (RFC 8414).
	var asm oauthex.AuthServerMeta
	if d.getJSON(ctx, "authorization-server metadata", base+"/.well-known/oauth-authorization-server", &asm) {
		d.add("AS issuer equals the URL byte for byte", asm.Issuer == base, "issuer %q; clients fetched it from %q and reject the mismatch (check --issuer)", asm.Issuer, base)
		for _, ep := range []struct{ name, got, path string }{
			{"authorization_endpoint", asm.AuthorizationEndpoint, "/authorize"},
			{"token_endpoint", asm.TokenEndpoint, "/token"},
			{"registration_endpoint", asm.RegistrationEndpoint, "/register"},
			{"revocation_endpoint", asm.RevocationEndpoint, "/revoke"},
			{"introspection_endpoint", asm.IntrospectionEndpoint, "/introspect"},
		} {
			d.add(ep.name+" is under the issuer", ep.got == base+ep.path, "got %q; want %q", ep.got, base+ep.path)
		}
		d.add("S256 is the PKCE method", slices.Equal(asm.CodeChallengeMethodsSupported, []string{"S256"}), "code_challenge_methods_supported %q", asm.CodeChallengeMethodsSupported)
		d.add("response_types_supported is [code]", slices.Equal(asm.ResponseTypesSupported, []string{"code"}), "got %q", asm.ResponseTypesSupported)
		d.add("refresh_token grant advertised", slices.Contains(asm.GrantTypesSupported, "refresh_token"), "grant_types_supported %q", asm.GrantTypesSupported)
		d.add("iss parameter advertised (RFC 9207)", asm.AuthorizationResponseIssParameterSupported, "authorization_response_iss_parameter_supported is false")
	}

	// 4. CORS for browser-based clients such as MCP Inspector.
	origin := "http://localhost:6274"
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/oauth-authorization-server", nil)
	req.Header.Set("Origin", origin)
	if resp, err := d.hc.Do(req); d.add("metadata answers a cross-origin GET", err == nil, "%v", err) {
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		d.add("metadata allows browser clients (CORS)", acao == "*" || acao == origin, "Access-Control-Allow-Origin %q", acao)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodOptions, base+"/token", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	if resp, err := d.hc.Do(req); d.add("token endpoint answers a CORS preflight", err == nil, "%v", err) {
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		d.add("token endpoint allows browser clients (CORS)", resp.StatusCode < 300 && (acao == "*" || acao == origin), "%s, Access-Control-Allow-Origin %q", resp.Status, acao)
	}
	return d.checks
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
