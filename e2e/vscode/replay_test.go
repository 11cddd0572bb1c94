//go:build e2e

// Package vscode_test replays, request by request, what VS Code's MCP client
// sends to an HTTP MCP server that needs OAuth, against a running mcpd, and
// asserts every response VS Code depends on.
//
// Run it through e2e/clients/run.sh (which starts the server), or by hand:
//
//	MCPD_URL=http://127.0.0.1:8080 MCPD_E2E_USER=alice MCPD_E2E_PASSWORD=... \
//	  go test -tags e2e -count=1 -v ./e2e/vscode/
//
// The server should run with a short access-token lifetime (run.sh uses
// --access-token-ttl 3s) so that the expiry step does not wait long.
//
// What is replayed, and where in microsoft/vscode it comes from (read, not
// copied; paths as of the main branch):
//
//   - src/vs/workbench/api/common/extHostMcp.ts, McpHTTPHandle:
//     the first POST of `initialize` without a token (Content-Type,
//     Content-Length, Accept "text/event-stream, application/json",
//     User-Agent "<product.nameLong>/<version>"); isAuthStatusCode (401 or 403
//     starts the auth flow, any other 4xx on the first request falls back to
//     legacy SSE); _fetchWithAuthRetry; AuthMetadata.update (a 401/403 whose
//     Bearer `scope` differs from the scopes in use re-authorizes);
//     createAuthMetadata / parseWWWAuthenticateHeaderForChallenges (only the
//     challenge whose scheme is exactly "Bearer" counts; its
//     `resource_metadata` and `scope`; scopes fall back to the PRM's
//     scopes_supported; AS metadata from authorization_servers[0] with
//     same-origin headers incl. MCP-Protocol-Version).
//   - src/vs/base/common/oauth.ts: fetchResourceMetadata (Accept:
//     application/json, MCP-Protocol-Version for same-origin, status must be
//     200, `resource` must equal the MCP URL after URL normalisation, path
//     well-known then root), fetchAuthorizationServerMetadata (RFC 8414 path
//     insertion first), isAuthorizationServerMetadata (issuer required, the
//     endpoint URLs must be http(s)), fetchDynamicRegistration (the body:
//     client_name, client_uri https://code.visualstudio.com, grant_types
//     filtered from grant_types_supported, response_types [code], the four
//     redirect URIs, scope, token_endpoint_auth_method none,
//     application_type native), DEFAULT_AUTH_FLOW_PORT = 33418,
//     parseWWWAuthenticateHeader.
//   - src/vs/workbench/api/node/extHostAuthentication.ts: LoopbackAuthServer
//     (listens on 127.0.0.1:33418, or a random port when that is taken;
//     redirect_uri http://127.0.0.1:<port>/; state = base64 of 16 random
//     bytes, compared exactly; the callback is served on path "/" only) and
//     _createWithLoopbackServer (authorize parameters and their order).
//   - src/vs/workbench/api/common/extHostAuthentication.ts, DynamicAuthProvider:
//     _createWithUrlHandler (redirect_uri https://vscode.dev/redirect, state is
//     an app URI), exchangeCodeForToken and exchangeRefreshTokenForToken (form
//     bodies with client_id and resource, Accept: application/json; a token
//     response needs access_token and token_type), getSessions (refreshes when
//     fewer than five minutes remain: now > created_at + expires_in*1000 - 5 min;
//     a missing refresh_token in the refresh response keeps the old one).
//   - src/vs/workbench/api/browser/mainThreadAuthentication.ts: with no stored
//     client id, VS Code uses productService.authClientIdMetadataUrl as a
//     Client ID Metadata Document client_id when the AS metadata says
//     client_id_metadata_document_supported, and registers through
//     fetchDynamicRegistration otherwise. Builds without that product.json
//     key (OSS builds) always register. mcpd advertises CIMD, so Microsoft's
//     build takes the CIMD path; the server then fetches the https document
//     from vscode.dev, which this offline replay cannot do. It replays the
//     registration path; every later step (authorize, token, refresh) is the
//     same for both apart from the client_id.
//   - src/vs/workbench/contrib/mcp/common/modelContextProtocol.ts:
//     MCP.LATEST_PROTOCOL_VERSION, sent as MCP-Protocol-Version on the metadata
//     fetches.
package vscode_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// MCP.LATEST_PROTOCOL_VERSION of current VS Code (older releases sent
	// older revisions; see olderProtocolVersions).
	protocolVersion = "2025-11-25"
	// product.nameLong + "/" + product.version, as McpHTTPHandle._fetch sets it.
	userAgent = "Visual Studio Code/1.107.0"
	// initData.environment.appName: the client_name of the registration.
	appName = "Visual Studio Code"
	// DEFAULT_AUTH_FLOW_PORT in src/vs/base/common/oauth.ts.
	defaultAuthFlowPort = 33418
)

// olderProtocolVersions were MCP.LATEST_PROTOCOL_VERSION in earlier VS Code
// releases; the metadata endpoints must answer them alike.
var olderProtocolVersions = []string{"2025-06-18", "2025-03-26"}

// env is what run.sh provides.
type env struct {
	issuer, mcpURL, user, password string
}

func loadEnv(t *testing.T) env {
	t.Helper()
	u := strings.TrimRight(os.Getenv("MCPD_URL"), "/")
	if u == "" {
		// This file only builds with -tags e2e, which only run.sh passes:
		// a missing server is a failure, not a skip.
		t.Fatal("MCPD_URL is not set: run this through e2e/clients/run.sh, or start mcpd and set MCPD_URL, MCPD_E2E_USER, MCPD_E2E_PASSWORD")
	}
	e := env{issuer: u, mcpURL: u + "/mcp", user: os.Getenv("MCPD_E2E_USER"), password: os.Getenv("MCPD_E2E_PASSWORD")}
	if e.user == "" {
		e.user = "alice"
	}
	if e.password == "" {
		t.Fatal("MCPD_E2E_PASSWORD is not set")
	}
	return e
}

// client is VS Code's fetch: no automatic redirects (McpHTTPHandle._fetch
// follows them by hand; the OAuth calls never see one from a good server).
var client = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, rawURL string, headers map[string]string, body []byte) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, r)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, rawURL, err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, rawURL, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func decodeJSON(t *testing.T, what string, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: body is not JSON (%v): %.300s", what, err, r.body)
	}
}

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string
	params map[string]string
}

// parseWWWAuthenticate follows parseWWWAuthenticateHeader in
// src/vs/base/common/oauth.ts: split on commas outside quotes; a token
// without "=" is a scheme; "Scheme k=v" starts a challenge; quotes around a
// value are stripped.
func parseWWWAuthenticate(h string) []challenge {
	var tokens []string
	var cur strings.Builder
	inQuotes := false
	for _, c := range h {
		switch {
		case c == '"':
			inQuotes = !inQuotes
			cur.WriteRune(c)
		case c == ',' && !inQuotes:
			if s := strings.TrimSpace(cur.String()); s != "" {
				tokens = append(tokens, s)
			}
			cur.Reset()
		default:
			cur.WriteRune(c)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		tokens = append(tokens, s)
	}
	unquote := func(v string) string {
		v = strings.TrimSpace(v)
		v = strings.TrimPrefix(v, `"`)
		return strings.TrimSuffix(v, `"`)
	}
	var out []challenge
	var c *challenge
	for _, tok := range tokens {
		if !strings.Contains(tok, "=") {
			if c != nil {
				out = append(out, *c)
			}
			c = &challenge{scheme: strings.TrimSpace(tok), params: map[string]string{}}
			continue
		}
		if sp := strings.Index(tok, " "); sp > 0 {
			before, after := tok[:sp], tok[sp+1:]
			if !strings.Contains(before, "=") && strings.Contains(after, "=") {
				if c != nil {
					out = append(out, *c)
				}
				c = &challenge{scheme: strings.TrimSpace(before), params: map[string]string{}}
				if eq := strings.Index(after, "="); eq > 0 {
					c.params[strings.TrimSpace(after[:eq])] = unquote(after[eq+1:])
				}
				continue
			}
		}
		if c != nil {
			if eq := strings.Index(tok, "="); eq > 0 {
				c.params[strings.TrimSpace(tok[:eq])] = unquote(tok[eq+1:])
			}
		}
	}
	if c != nil {
		out = append(out, *c)
	}
	return out
}

// bearer returns the params of the challenge whose scheme is exactly
// "Bearer" (VS Code compares case-sensitively).
func bearer(t *testing.T, r response) map[string]string {
	t.Helper()
	h := r.header.Get("WWW-Authenticate")
	if h == "" {
		t.Fatalf("status %d without WWW-Authenticate", r.status)
	}
	for _, c := range parseWWWAuthenticate(h) {
		if c.scheme == "Bearer" {
			return c.params
		}
	}
	t.Fatalf("WWW-Authenticate %q has no challenge with the scheme spelled exactly \"Bearer\" (VS Code ignores others)", h)
	return nil
}

func scopeList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, " ") {
		if strings.TrimSpace(f) != "" {
			out = append(out, f)
		}
	}
	return out
}

// scopesMatch is scopesMatch in src/vs/base/common/oauth.ts.
func scopesMatch(a, b []string) bool {
	if a == nil && b == nil {
		return true
	}
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

// normalizeURL is what `new URL(s).toString()` does to the values VS Code
// compares: lower-case scheme and host, default port dropped, "/" for an
// empty path.
func normalizeURL(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		t.Fatalf("%q is not an absolute URL", s)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	if (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443") {
		u.Host = u.Hostname()
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String()
}

type prm struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

type asMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RegistrationEndpoint          string   `json:"registration_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported               []string `json:"scopes_supported"`
	DeviceAuthorizationEndpoint   string   `json:"device_authorization_endpoint"`
}

type tokenResponse struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    *float64 `json:"expires_in"`
	RefreshToken string   `json:"refresh_token"`
	Scope        string   `json:"scope"`
	createdAt    time.Time
}

// randomHex is DynamicAuthProvider.generateRandomString: hex of random bytes, cut to length.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func codeChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// loopbackState is LoopbackAuthServer's state: randomBytes(16).toString('base64'),
// so it carries '+', '/' and '=' that must survive the round trip.
func loopbackState() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s := base64.StdEncoding.EncodeToString(b)
		if strings.ContainsAny(s, "+/") {
			return s
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---- the browser: login and consent pages over HTTP -------------------------

var (
	formRe   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	buttonRe = regexp.MustCompile(`(?is)<button\b([^>]*)>`)
	attrRe   = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>` + "`" + `]+)))?`)
)

func attrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(s, -1) {
		out[strings.ToLower(m[1])] = html.UnescapeString(m[2] + m[3] + m[4])
	}
	return out
}

type form struct {
	attrs   map[string]string
	inputs  []map[string]string
	buttons []map[string]string
}

func parseForms(page string) []form {
	var out []form
	for _, m := range formRe.FindAllStringSubmatch(page, -1) {
		f := form{attrs: attrs(m[1])}
		for _, i := range inputRe.FindAllStringSubmatch(m[2], -1) {
			f.inputs = append(f.inputs, attrs(i[1]))
		}
		for _, b := range buttonRe.FindAllStringSubmatch(m[2], -1) {
			f.buttons = append(f.buttons, attrs(b[1]))
		}
		out = append(out, f)
	}
	return out
}

// browser is a person with a browser: it keeps its cookies across
// authorizations, like the user's real browser does.
type browser struct {
	jar  *cookiejar.Jar
	user string
	pass string
	deny bool // press Deny instead of Allow on the consent page
}

func newBrowser(t *testing.T, e env) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{jar: jar, user: e.user, pass: e.password}
}

// authorize opens authURL, signs in if asked, allows on the consent page
// (granting only `grant` scopes when non-nil, else what is pre-checked), and
// returns the redirect that leaves the issuer for redirectURI.
func (b *browser) authorize(t *testing.T, authURL, redirectURI string, grant []string) *url.URL {
	t.Helper()
	hc := &http.Client{
		Jar:           b.jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	start, _ := url.Parse(authURL)
	ru, _ := url.Parse(redirectURI)
	cur := authURL
	method := http.MethodGet
	var body string
	var trail []string
	loggedIn := false
	for step := 0; step < 12; step++ {
		req, _ := http.NewRequest(method, cur, strings.NewReader(body))
		req.Header.Set("User-Agent", "Mozilla/5.0 (replay of the user's browser)")
		req.Header.Set("Accept", "text/html")
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", start.Scheme+"://"+start.Host)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("browser %s %s: %v", method, cur, err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		trail = append(trail, fmt.Sprintf("%s %s -> %d", method, cur, res.StatusCode))
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			loc, err := res.Request.URL.Parse(res.Header.Get("Location"))
			if err != nil || res.Header.Get("Location") == "" {
				t.Fatalf("redirect without a usable Location: %v", trail)
			}
			if loc.Host != start.Host || (loc.Scheme == ru.Scheme && loc.Host == ru.Host && loc.Path == ru.Path) {
				return loc
			}
			cur, method, body = loc.String(), http.MethodGet, ""
			continue
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("browser: unexpected %d at %s: %.300s (trail %v)", res.StatusCode, cur, page, trail)
		}
		var login, consent *form
		forms := parseForms(string(page))
		for i := range forms {
			f := &forms[i]
			for _, in := range f.inputs {
				if in["name"] == "password" {
					login = f
				}
			}
			for _, bt := range f.buttons {
				if bt["name"] == "action" && bt["value"] == "allow" {
					consent = f
				}
			}
		}
		vals := url.Values{}
		var f *form
		switch {
		case login != nil:
			if loggedIn {
				t.Fatalf("the login form came back after signing in (wrong password?): %v", trail)
			}
			loggedIn = true
			f = login
			for _, in := range f.inputs {
				switch {
				case in["name"] == "username":
					vals.Set("username", b.user)
				case in["name"] == "password":
					vals.Set("password", b.pass)
				case strings.EqualFold(in["type"], "hidden") && in["name"] != "":
					vals.Add(in["name"], in["value"])
				}
			}
		case consent != nil:
			f = consent
			for _, in := range f.inputs {
				typ := strings.ToLower(in["type"])
				switch {
				case typ == "hidden" && in["name"] != "":
					vals.Add(in["name"], in["value"])
				case typ == "checkbox" && in["name"] == "scope":
					_, checked := in["checked"]
					if (grant == nil && checked) || slices.Contains(grant, in["value"]) {
						vals.Add("scope", in["value"])
					}
				}
			}
			vals.Set("action", "allow")
			if b.deny {
				vals.Set("action", "deny")
			}
		default:
			t.Fatalf("page at %s has neither a login nor a consent form: %.300s", cur, page)
		}
		target, err := res.Request.URL.Parse(f.attrs["action"])
		if err != nil {
			t.Fatalf("form action %q: %v", f.attrs["action"], err)
		}
		cur, method, body = target.String(), http.MethodPost, vals.Encode()
	}
	t.Fatalf("too many steps: %v", trail)
	return nil
}

// ---- MCP over Streamable HTTP, as McpHTTPHandle sends it -------------------

type mcpSession struct {
	e         env
	sessionID string
	nextID    int
}

func (s *mcpSession) post(t *testing.T, token string, msg map[string]any) response {
	t.Helper()
	body, _ := json.Marshal(msg)
	h := map[string]string{
		"Content-Type":   "application/json",
		"Content-Length": strconv.Itoa(len(body)),
		"Accept":         "text/event-stream, application/json",
		"User-Agent":     userAgent,
	}
	if s.sessionID != "" {
		h["Mcp-Session-Id"] = s.sessionID
	}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	r := do(t, http.MethodPost, s.e.mcpURL, h, body)
	if sid := r.header.Get("Mcp-Session-Id"); sid != "" {
		s.sessionID = sid
	}
	return r
}

func (s *mcpSession) request(method string, params any) map[string]any {
	s.nextID++
	m := map[string]any{"jsonrpc": "2.0", "id": s.nextID, "method": method}
	if params != nil {
		m["params"] = params
	}
	return m
}

func initializeMsg(s *mcpSession) map[string]any {
	return s.request("initialize", map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    map[string]any{"roots": map[string]any{"listChanged": true}, "sampling": map[string]any{}, "elicitation": map[string]any{}},
		"clientInfo":      map[string]any{"name": "Visual Studio Code", "version": "1.107.0"},
	})
}

// rpcResult reads the JSON-RPC response out of a JSON or SSE body, the way
// _handleSuccessfulStreamableHttp does.
func rpcResult(t *testing.T, r response) map[string]any {
	t.Helper()
	ct := strings.ToLower(r.header.Get("Content-Type"))
	var payloads [][]byte
	if strings.HasPrefix(ct, "text/event-stream") {
		for _, ev := range strings.Split(strings.ReplaceAll(string(r.body), "\r\n", "\n"), "\n\n") {
			var data []string
			for _, line := range strings.Split(ev, "\n") {
				if v, ok := strings.CutPrefix(line, "data:"); ok {
					data = append(data, strings.TrimPrefix(v, " "))
				}
			}
			if len(data) > 0 {
				payloads = append(payloads, []byte(strings.Join(data, "\n")))
			}
		}
	} else {
		payloads = append(payloads, r.body)
	}
	for _, p := range payloads {
		var m map[string]any
		if json.Unmarshal(p, &m) != nil {
			continue
		}
		if _, ok := m["id"]; !ok {
			continue // a notification on the stream
		}
		if e, ok := m["error"]; ok {
			t.Fatalf("JSON-RPC error: %v", e)
		}
		res, _ := m["result"].(map[string]any)
		if res == nil {
			t.Fatalf("JSON-RPC response without result: %s", p)
		}
		return res
	}
	t.Fatalf("no JSON-RPC response in %d body (Content-Type %q): %.300s", r.status, ct, r.body)
	return nil
}

// ---- the replay -------------------------------------------------------------

func TestVSCodeReplay(t *testing.T) {
	e := loadEnv(t)
	mcpURL := normalizeURL(t, e.mcpURL)

	// 1. McpHTTPHandle._sendStreamableHttp: the first message, no token yet.
	sess := &mcpSession{e: e}
	first := sess.post(t, "", initializeMsg(sess))
	if first.status != http.StatusUnauthorized && first.status != http.StatusForbidden {
		t.Fatalf("unauthenticated initialize: status %d, want 401 (any other 4xx makes VS Code fall back to legacy SSE): %.200s", first.status, first.body)
	}
	if first.status != http.StatusUnauthorized {
		t.Errorf("unauthenticated initialize: status %d, want 401", first.status)
	}
	ch := bearer(t, first)
	rmURL := ch["resource_metadata"]
	if rmURL == "" {
		t.Errorf("401 challenge has no resource_metadata (VS Code then guesses the well-known URLs): %q", first.header.Get("WWW-Authenticate"))
	}
	challengeScopes := scopeList(ch["scope"])
	t.Logf("401 WWW-Authenticate: %s", first.header.Get("WWW-Authenticate"))

	// 2. fetchResourceMetadata: the challenge URL, with same-origin headers.
	sameOrigin := map[string]string{"Accept": "application/json", "MCP-Protocol-Version": protocolVersion, "User-Agent": userAgent}
	var resource prm
	fetchPRM := func(u string) prm {
		t.Helper()
		r := do(t, http.MethodGet, u, sameOrigin, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200 (fetchResourceMetadata accepts nothing else)", u, r.status)
		}
		var p prm
		decodeJSON(t, "protected resource metadata", r, &p)
		if p.Resource == "" {
			t.Fatalf("GET %s: no resource (isAuthorizationProtectedResourceMetadata fails)", u)
		}
		if got := normalizeURL(t, p.Resource); got != mcpURL {
			t.Fatalf("GET %s: resource %q, VS Code requires it to equal the server URL %q", u, got, mcpURL)
		}
		return p
	}
	if rmURL != "" {
		resource = fetchPRM(rmURL)
	}
	// Without a challenge URL VS Code tries the path-inserted well-known URL, then the root one.
	mu, _ := url.Parse(e.mcpURL)
	withPath := fetchPRM(mu.Scheme + "://" + mu.Host + "/.well-known/oauth-protected-resource" + mu.Path)
	if mu.Path == "/mcp" {
		// Under an issuer path (https://host/mcpd) the host's root is not
		// mcpd's to claim; the path-inserted URL above is found first.
		fetchPRM(mu.Scheme + "://" + mu.Host + "/.well-known/oauth-protected-resource")
	}
	if rmURL == "" {
		resource = withPath
	}
	for _, v := range olderProtocolVersions {
		h := map[string]string{"Accept": "application/json", "MCP-Protocol-Version": v, "User-Agent": userAgent}
		if r := do(t, http.MethodGet, mu.Scheme+"://"+mu.Host+"/.well-known/oauth-protected-resource"+mu.Path, h, nil); r.status != http.StatusOK {
			t.Errorf("PRM with MCP-Protocol-Version %s (an older VS Code): status %d", v, r.status)
		}
		// RFC 8414 §3.1: the issuer's path, if any, after the well-known string.
		if r := do(t, http.MethodGet, mu.Scheme+"://"+mu.Host+"/.well-known/oauth-authorization-server"+strings.TrimSuffix(mu.Path, "/mcp"), h, nil); r.status != http.StatusOK {
			t.Errorf("AS metadata with MCP-Protocol-Version %s (an older VS Code): status %d", v, r.status)
		}
	}
	if len(resource.AuthorizationServers) == 0 {
		t.Fatal("PRM has no authorization_servers: VS Code falls back to guessing /authorize, /token, /register at the origin")
	}
	if !slices.Equal(resource.BearerMethodsSupported, []string{"header"}) {
		t.Errorf("PRM bearer_methods_supported = %v, want [header]", resource.BearerMethodsSupported)
	}
	// AuthMetadata: scopes are the challenge's, else the PRM's scopes_supported.
	scopes := challengeScopes
	if scopes == nil {
		scopes = resource.ScopesSupported
	}
	for _, s := range challengeScopes {
		if !slices.Contains(resource.ScopesSupported, s) {
			t.Errorf("challenge scope %q is not in the PRM's scopes_supported %v", s, resource.ScopesSupported)
		}
	}
	t.Logf("VS Code will ask for scopes %v", scopes)

	// 3. fetchAuthorizationServerMetadata on authorization_servers[0] (same origin: MCP-Protocol-Version too).
	asURL := resource.AuthorizationServers[0]
	asu, err := url.Parse(asURL)
	if err != nil || !asu.IsAbs() {
		t.Fatalf("authorization_servers[0] %q is not an absolute URL", asURL)
	}
	extraPath := asu.Path
	if extraPath == "/" {
		extraPath = ""
	}
	asMetaURL := asu.Scheme + "://" + asu.Host + "/.well-known/oauth-authorization-server" + extraPath
	asHeaders := map[string]string{"Accept": "application/json", "User-Agent": userAgent}
	if asu.Host == mu.Host && asu.Scheme == mu.Scheme {
		asHeaders["MCP-Protocol-Version"] = protocolVersion
	}
	r := do(t, http.MethodGet, asMetaURL, asHeaders, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200 (the RFC 8414 path-inserted URL is tried first)", asMetaURL, r.status)
	}
	var as asMetadata
	decodeJSON(t, "authorization server metadata", r, &as)
	if as.Issuer == "" {
		t.Fatal("AS metadata has no issuer: isAuthorizationServerMetadata throws")
	}
	if as.Issuer != strings.TrimRight(asURL, "/") && as.Issuer != asURL {
		t.Errorf("AS metadata issuer %q differs from authorization_servers[0] %q (RFC 8414 §3.3)", as.Issuer, asURL)
	}
	for name, v := range map[string]string{"issuer": as.Issuer, "authorization_endpoint": as.AuthorizationEndpoint, "token_endpoint": as.TokenEndpoint, "registration_endpoint": as.RegistrationEndpoint, "jwks_uri": as.JWKSURI} {
		if v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			t.Errorf("AS metadata %s %q must start with http:// or https://", name, v)
		}
	}
	if as.AuthorizationEndpoint == "" || as.TokenEndpoint == "" || as.RegistrationEndpoint == "" {
		t.Fatalf("AS metadata lacks authorization_endpoint, token_endpoint or registration_endpoint: %+v", as)
	}
	if !slices.Contains(as.ResponseTypesSupported, "code") {
		t.Errorf("response_types_supported %v lacks code", as.ResponseTypesSupported)
	}
	if !slices.Contains(as.CodeChallengeMethodsSupported, "S256") {
		t.Errorf("code_challenge_methods_supported %v lacks S256", as.CodeChallengeMethodsSupported)
	}
	if as.TokenEndpointAuthMethods != nil && !slices.Contains(as.TokenEndpointAuthMethods, "none") {
		t.Errorf("token_endpoint_auth_methods_supported %v lacks none (VS Code is a public client)", as.TokenEndpointAuthMethods)
	}

	// 4. fetchDynamicRegistration (see the note on mainThreadAuthentication.ts above).
	var cimd struct {
		Supported *bool `json:"client_id_metadata_document_supported"`
	}
	decodeJSON(t, "authorization server metadata", r, &cimd)
	if cimd.Supported != nil && *cimd.Supported {
		t.Logf("client_id_metadata_document_supported: Microsoft's VS Code build would use its CIMD URL as client_id; replaying the registration path of builds without one")
	}
	vscodeGrants := []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}
	grants := vscodeGrants
	if as.GrantTypesSupported != nil {
		grants = nil
		for _, g := range as.GrantTypesSupported {
			if slices.Contains(vscodeGrants, g) {
				grants = append(grants, g)
			}
		}
	}
	if !slices.Contains(grants, "authorization_code") || !slices.Contains(grants, "refresh_token") {
		t.Errorf("VS Code registers grant_types %v: without authorization_code and refresh_token it cannot sign in and refresh", grants)
	}
	redirectURIs := []string{
		"https://insiders.vscode.dev/redirect",
		"https://vscode.dev/redirect",
		"http://127.0.0.1/",
		fmt.Sprintf("http://127.0.0.1:%d/", defaultAuthFlowPort),
	}
	regBody := map[string]any{
		"client_name":                appName,
		"client_uri":                 "https://code.visualstudio.com",
		"grant_types":                grants,
		"response_types":             []string{"code"},
		"redirect_uris":              redirectURIs,
		"token_endpoint_auth_method": "none",
		"application_type":           "native",
	}
	if len(resource.ScopesSupported) > 0 {
		regBody["scope"] = strings.Join(resource.ScopesSupported, " ")
	}
	rb, _ := json.Marshal(regBody)
	r = do(t, http.MethodPost, as.RegistrationEndpoint, map[string]string{"Content-Type": "application/json"}, rb)
	if r.status < 200 || r.status > 299 {
		t.Fatalf("registration: status %d, want 2xx (response.ok): %.300s", r.status, r.body)
	}
	if r.status != http.StatusCreated {
		t.Errorf("registration: status %d, RFC 7591 says 201", r.status)
	}
	var reg struct {
		ClientID                string   `json:"client_id"`
		ClientSecret            string   `json:"client_secret"`
		RedirectURIs            []string `json:"redirect_uris"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		ClientName              string   `json:"client_name"`
	}
	decodeJSON(t, "registration response", r, &reg)
	if reg.ClientID == "" {
		t.Fatalf("registration response has no client_id: %s", r.body)
	}
	if reg.ClientSecret != "" {
		t.Errorf("a public client (token_endpoint_auth_method none) got a client_secret")
	}
	if reg.TokenEndpointAuthMethod != "" && reg.TokenEndpointAuthMethod != "none" {
		t.Errorf("token_endpoint_auth_method = %q, want none", reg.TokenEndpointAuthMethod)
	}
	for _, u := range redirectURIs {
		if reg.RedirectURIs != nil && !slices.Contains(reg.RedirectURIs, u) {
			t.Errorf("registration dropped redirect URI %q: got %v", u, reg.RedirectURIs)
		}
	}
	t.Logf("registered client %s", reg.ClientID)

	b := newBrowser(t, e)

	// authorize replays _createWithLoopbackServer / _createWithUrlHandler and
	// exchangeCodeForToken for one redirect URI.
	authURLFor := func(redirectURI, state string, reqScopes []string, loopback bool) (authURL, verifier string) {
		verifier = randomHex(64)
		// URLSearchParams.append keeps insertion order (url.Values would sort).
		challenge := codeChallenge(verifier)
		var params [][2]string
		if loopback {
			// _createWithLoopbackServer; redirect_uri and state are set last.
			params = [][2]string{{"client_id", reg.ClientID}, {"response_type", "code"}, {"scope", strings.Join(reqScopes, " ")},
				{"code_challenge", challenge}, {"code_challenge_method", "S256"}}
			if resource.Resource != "" {
				params = append(params, [2]string{"resource", resource.Resource})
			}
			params = append(params, [2]string{"redirect_uri", redirectURI}, [2]string{"state", state})
		} else {
			// _createWithUrlHandler.
			params = [][2]string{{"client_id", reg.ClientID}, {"response_type", "code"}, {"state", state},
				{"code_challenge", challenge}, {"code_challenge_method", "S256"}}
			if len(reqScopes) > 0 {
				params = append(params, [2]string{"scope", strings.Join(reqScopes, " ")})
			}
			if resource.Resource != "" {
				params = append(params, [2]string{"resource", resource.Resource})
			}
			params = append(params, [2]string{"redirect_uri", redirectURI})
		}
		var parts []string
		for _, p := range params {
			parts = append(parts, url.QueryEscape(p[0])+"="+url.QueryEscape(p[1]))
		}
		return as.AuthorizationEndpoint + "?" + strings.Join(parts, "&"), verifier
	}
	authorize := func(t *testing.T, redirectURI, state string, reqScopes, grant []string, loopback bool) tokenResponse {
		t.Helper()
		authURL, verifier := authURLFor(redirectURI, state, reqScopes, loopback)

		loc := b.authorize(t, authURL, redirectURI, grant)
		want, _ := url.Parse(redirectURI)
		if loc.Scheme != want.Scheme || loc.Host != want.Host || loc.Path != want.Path {
			t.Fatalf("redirected to %s, want %s (the loopback server answers only on path %q)", loc, redirectURI, want.Path)
		}
		lq := loc.Query()
		if errCode := lq.Get("error"); errCode != "" {
			t.Fatalf("authorization error %s: %s", errCode, lq.Get("error_description"))
		}
		code := lq.Get("code")
		if code == "" {
			t.Fatalf("no code in %s", loc)
		}
		if got := lq.Get("state"); got != state {
			t.Fatalf("state came back as %q, sent %q (VS Code compares exactly)", got, state)
		}
		if iss := lq.Get("iss"); iss != as.Issuer {
			t.Errorf("iss = %q, want the issuer %q (RFC 9207)", iss, as.Issuer)
		}
		// The URL handler reads the code undecoded with /[?&]code=([^&]+)/.
		if m := regexp.MustCompile(`[?&]code=([^&]+)`).FindStringSubmatch("?" + loc.RawQuery); m == nil || m[1] != url.QueryEscape(code) && m[1] != code {
			t.Errorf("raw code %v differs from the decoded one %q", m, code)
		}

		form := url.Values{}
		form.Set("client_id", reg.ClientID)
		form.Set("grant_type", "authorization_code")
		form.Set("code", code)
		form.Set("redirect_uri", redirectURI)
		form.Set("code_verifier", verifier)
		if resource.Resource != "" {
			form.Set("resource", resource.Resource)
		}
		return tokenRequest(t, as.TokenEndpoint, form, "code exchange")
	}

	// 5. Loopback flow on 127.0.0.1:33418 (the port VS Code tries first).
	var tok tokenResponse
	t.Run("loopback 33418", func(t *testing.T) {
		tok = authorize(t, fmt.Sprintf("http://127.0.0.1:%d/", defaultAuthFlowPort), loopbackState(), scopes, nil, true)
	})
	if tok.AccessToken == "" {
		t.FailNow()
	}

	// 6. The token works on /mcp: initialize, initialized, tools/list, whoami.
	t.Run("mcp with the token", func(t *testing.T) {
		s := &mcpSession{e: e}
		r := s.post(t, tok.AccessToken, initializeMsg(s))
		if r.status != http.StatusOK {
			t.Fatalf("initialize with token: status %d: %.300s", r.status, r.body)
		}
		init := rpcResult(t, r)
		if pv, _ := init["protocolVersion"].(string); pv == "" {
			t.Errorf("initialize result without protocolVersion: %v", init)
		}
		r = s.post(t, tok.AccessToken, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
		if r.status != http.StatusAccepted && r.status != http.StatusOK {
			t.Errorf("notifications/initialized: status %d, want 202", r.status)
		}
		r = s.post(t, tok.AccessToken, s.request("tools/list", map[string]any{}))
		if r.status != http.StatusOK {
			t.Fatalf("tools/list: status %d", r.status)
		}
		tools, _ := rpcResult(t, r)["tools"].([]any)
		var names []string
		for _, x := range tools {
			if m, ok := x.(map[string]any); ok {
				names = append(names, fmt.Sprint(m["name"]))
			}
		}
		if !slices.Contains(names, "whoami") {
			t.Errorf("tools/list lacks whoami: %v", names)
		}
		r = s.post(t, tok.AccessToken, s.request("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}))
		if r.status != http.StatusOK {
			t.Fatalf("whoami: status %d", r.status)
		}
		sc, _ := rpcResult(t, r)["structuredContent"].(map[string]any)
		if sc["user"] != e.user || sc["client_id"] != reg.ClientID {
			t.Errorf("whoami = %v, want user %q client %q", sc, e.user, reg.ClientID)
		}
		// McpHTTPHandle.close: DELETE with the session id (result ignored by VS Code).
		if s.sessionID != "" {
			r = do(t, http.MethodDelete, e.mcpURL, map[string]string{"Mcp-Session-Id": s.sessionID, "Authorization": "Bearer " + tok.AccessToken, "User-Agent": userAgent}, nil)
			if r.status >= 500 {
				t.Errorf("DELETE session: status %d", r.status)
			}
		}
	})

	// 7. Loopback flow on a random port (33418 was taken): same registration,
	// "http://127.0.0.1/" registered, any port must match. The user's browser
	// still has its session, and this time VS Code asks only for notes:read.
	t.Run("loopback random port, narrower scope, step-up challenge", func(t *testing.T) {
		port := freePort(t)
		narrow := authorize(t, fmt.Sprintf("http://127.0.0.1:%d/", port), loopbackState(), []string{"notes:read"}, []string{"notes:read"}, true)
		s := &mcpSession{e: e}
		r := s.post(t, narrow.AccessToken, initializeMsg(s))
		if r.status != http.StatusOK {
			t.Fatalf("initialize: status %d", r.status)
		}
		s.post(t, narrow.AccessToken, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
		r = s.post(t, narrow.AccessToken, s.request("tools/call", map[string]any{"name": "note_save", "arguments": map[string]any{"title": "t", "body": "b"}}))
		// isAuthStatusCode(403) + AuthMetadata.update: VS Code steps up only on a Bearer challenge with a new scope.
		if r.status != http.StatusForbidden {
			t.Fatalf("note_save with a notes:read token: status %d, want 403 insufficient_scope: %.300s", r.status, r.body)
		}
		p := bearer(t, r)
		if p["error"] != "insufficient_scope" {
			t.Errorf("403 challenge error = %q, want insufficient_scope", p["error"])
		}
		if !slices.Contains(scopeList(p["scope"]), "notes:write") {
			t.Errorf("403 challenge scope = %q, must name notes:write so that VS Code asks for it", p["scope"])
		}
		if scopesMatch(scopeList(p["scope"]), []string{"notes:read"}) {
			t.Errorf("403 challenge scope equals the scopes in use: VS Code would not re-authorize")
		}
		if p["resource_metadata"] == "" {
			t.Errorf("403 challenge without resource_metadata")
		}
	})

	// 8. URL-handler flow: redirect_uri https://vscode.dev/redirect, state an app URI.
	t.Run("url handler vscode.dev", func(t *testing.T) {
		state := fmt.Sprintf("vscode://vscode.dynamicauthprovider/%s/authorize?nonce=%s&windowId=1", asu.Host, randomHex(32))
		authorize(t, "https://vscode.dev/redirect", state, scopes, nil, false)
	})

	// 8b. The user presses Deny: LoopbackAuthServer needs `error` on path "/"
	// (it rejects the sign-in with it); RFC 6749 §4.1.2.1 and RFC 9207 want
	// state and iss too.
	t.Run("deny on the consent page", func(t *testing.T) {
		state := loopbackState()
		redirectURI := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))
		authURL, _ := authURLFor(redirectURI, state, scopes, true)
		denier := &browser{jar: b.jar, user: b.user, pass: b.pass, deny: true}
		loc := denier.authorize(t, authURL, redirectURI, nil)
		if loc.Scheme+"://"+loc.Host+loc.Path != redirectURI {
			t.Fatalf("after Deny redirected to %s, want %s", loc, redirectURI)
		}
		q := loc.Query()
		if q.Get("error") != "access_denied" {
			t.Errorf("after Deny error = %q, want access_denied", q.Get("error"))
		}
		if q.Get("code") != "" {
			t.Errorf("after Deny a code was issued")
		}
		if q.Get("state") != state {
			t.Errorf("after Deny state = %q, want %q", q.Get("state"), state)
		}
		if q.Get("iss") != as.Issuer {
			t.Errorf("after Deny iss = %q, want %q", q.Get("iss"), as.Issuer)
		}
	})

	// 9. getSessions: refresh when fewer than five minutes remain.
	t.Run("refresh under five minutes", func(t *testing.T) {
		if tok.ExpiresIn == nil {
			t.Fatal("no expires_in: VS Code never refreshes such a token and uses it until a 401")
		}
		expiresAt := tok.createdAt.Add(time.Duration(*tok.ExpiresIn * float64(time.Second)))
		if !time.Now().After(expiresAt.Add(-5 * time.Minute)) {
			t.Fatalf("expires_in %.0f s: VS Code would not refresh yet; run the server with --access-token-ttl 3s", *tok.ExpiresIn)
		}
		form := url.Values{}
		form.Set("client_id", reg.ClientID)
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", tok.RefreshToken)
		if resource.Resource != "" {
			form.Set("resource", resource.Resource)
		}
		nt := tokenRequest(t, as.TokenEndpoint, form, "refresh")
		if nt.AccessToken == tok.AccessToken {
			t.Errorf("refresh returned the same access token")
		}
		if nt.RefreshToken == "" {
			t.Logf("refresh response without refresh_token: VS Code keeps the old one")
			nt.RefreshToken = tok.RefreshToken
		} else if nt.RefreshToken == tok.RefreshToken {
			t.Errorf("refresh token did not rotate (DESIGN: refresh tokens rotate)")
		}
		s := &mcpSession{e: e}
		if r := s.post(t, nt.AccessToken, initializeMsg(s)); r.status != http.StatusOK {
			t.Errorf("initialize with the refreshed token: status %d", r.status)
		}

		// The old access token, once expired, is refused with a Bearer challenge
		// whose scope (if any) matches the scopes in use, so that VS Code
		// refreshes instead of asking the user for new scopes.
		if wait := time.Until(expiresAt.Add(1500 * time.Millisecond)); wait > 0 && wait < 30*time.Second {
			time.Sleep(wait)
		}
		s2 := &mcpSession{e: e}
		r := s2.post(t, tok.AccessToken, initializeMsg(s2))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("expired access token: status %d, want 401", r.status)
		}
		p := bearer(t, r)
		if sc := scopeList(p["scope"]); sc != nil && !scopesMatch(sc, scopes) {
			t.Errorf("401 for an expired token challenges scope %v, VS Code uses %v: it would ask the user to sign in again instead of refreshing", sc, scopes)
		}
		if p["resource_metadata"] == "" {
			t.Errorf("401 for an expired token without resource_metadata")
		}
	})
}

// tokenRequest posts a form the way exchangeCodeForToken and
// exchangeRefreshTokenForToken do, and checks what they check.
func tokenRequest(t *testing.T, endpoint string, form url.Values, what string) tokenResponse {
	t.Helper()
	body := []byte(form.Encode())
	r := do(t, http.MethodPost, endpoint, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded",
		"Accept":       "application/json",
	}, body)
	if r.status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %.300s", what, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(strings.ToLower(cc), "no-store") {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	var tr tokenResponse
	decodeJSON(t, what, r, &tr)
	tr.createdAt = time.Now()
	if tr.AccessToken == "" || tr.TokenType == "" {
		t.Fatalf("%s: access_token and token_type are required: %.300s", what, r.body)
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") {
		t.Errorf("%s: token_type %q, want Bearer", what, tr.TokenType)
	}
	if tr.ExpiresIn == nil || *tr.ExpiresIn <= 0 {
		t.Errorf("%s: expires_in missing or not positive: VS Code's refresh-before-expiry depends on it", what)
	}
	if tr.RefreshToken == "" && form.Get("grant_type") == "authorization_code" {
		t.Errorf("%s: no refresh_token: VS Code would have to send the user to the browser every hour", what)
	}
	return tr
}
