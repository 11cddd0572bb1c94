package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
)

// serveConfig is every setting of `mcpd serve`, after defaults, the config
// file, the environment and the flags (in rising precedence) were applied.
type serveConfig struct {
	Listen                    string
	Issuer                    string
	IssuerDerived             bool // no issuer was configured: it follows the bound address
	Data                      string
	Database                  string // PostgreSQL URL; empty: bbolt in Data
	ConfigFile                string
	AccessTokenTTL            time.Duration
	RefreshTokenTTL           time.Duration
	RefreshTokenMaxTTL        time.Duration
	AuthCodeTTL               time.Duration
	RefreshGrace              time.Duration
	ConsentTTL                time.Duration
	SessionIdle               time.Duration
	SessionMaxAge             time.Duration
	PasswordLogin             bool
	CORSOrigins               []string
	AllowedOrigins            []string
	AllowedHosts              []string
	TrustedProxies            []netip.Prefix
	ClientMetadataDocuments   bool
	AllowPrivateMetadataHosts bool
	RegistrationsPerMinute    int
	MaxClients                int
	MetricsListen             string
	InitialPasswordFile       string
	LogFormat                 string
	LogLevel                  string
	ShutdownTimeout           time.Duration
	JanitorInterval           time.Duration
	DBCheck                   store.CheckMode
	MCPStateless              bool
	MCPJSONResponse           bool
	Upstreams                 []mcp.Upstream
	RequireDPoP               bool
	DPoPNonce                 bool
	ReadHeaderTimeout         time.Duration
	ReadBodyTimeout           time.Duration
	WriteTimeout              time.Duration
	IdleTimeout               time.Duration
	MaxConnections            int
	MaxConnectionsPerAddress  int
	MaxRequestBytes           int
	RegistrationsPerMinuteAll int
	MCPMaxSessionsPerUser     int
	MCPMaxStreamsPerUser      int
	// IdentityProviders are the config file's identity_providers, checked,
	// with their secrets read.
	IdentityProviders     []identityProvider
	IDPTimeout            time.Duration
	identityProviderFiles []identityProviderFile
	// now is the clock by which upstream tokens expire (idp/vault); nil is
	// time.Now. Tests set it.
	now func() time.Time
}

// setting is one serve setting: a flag, an environment variable and a
// config-file key, all parsed from the same text.
type setting struct {
	name  string // flag name; the config-file key is the same
	env   string
	def   string
	usage string
	set   func(c *serveConfig, v string) error
	// boolean settings may be given as a bare flag (--require-dpop),
	// which means true; --flag false and --flag=false still work.
	boolean bool
}

func durationSetting(name, def, usage string, field func(*serveConfig) *time.Duration) setting {
	return setting{name: name, env: envName(name), def: def, usage: usage, set: func(c *serveConfig, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("want a non-negative duration such as 90s, 1h or 720h")
		}
		*field(c) = d
		return nil
	}}
}

func listSetting(name, usage string, field func(*serveConfig) *[]string) setting {
	return setting{name: name, env: envName(name), usage: usage, set: func(c *serveConfig, v string) error {
		*field(c) = splitList(v)
		return nil
	}}
}

func boolSetting(name, def, usage string, field func(*serveConfig) *bool) setting {
	return setting{name: name, env: envName(name), def: def, usage: usage, boolean: true, set: func(c *serveConfig, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*field(c) = b
		return nil
	}}
}

func intSetting(name, def, usage string, field func(*serveConfig) *int) setting {
	return setting{name: name, env: envName(name), def: def, usage: usage, set: func(c *serveConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a non-negative whole number")
		}
		*field(c) = n
		return nil
	}}
}

func stringSetting(name, def, usage string, field func(*serveConfig) *string) setting {
	return setting{name: name, env: envName(name), def: def, usage: usage, set: func(c *serveConfig, v string) error {
		*field(c) = v
		return nil
	}}
}

// envName maps a flag name to its environment variable: refresh-grace →
// MCPD_REFRESH_GRACE.
func envName(flagName string) string {
	return "MCPD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

// serveSettings lists every setting of `mcpd serve`. The configuration
// reference in docs/configuration.md is checked against this table.
func serveSettings() []setting {
	return []setting{
		stringSetting("listen", "127.0.0.1:8080", "address to listen on", func(c *serveConfig) *string { return &c.Listen }),
		stringSetting("issuer", "", "public base URL of this server, no trailing slash; may have a path behind a reverse proxy, e.g. https://host/mcpd (default: http://LISTEN)", func(c *serveConfig) *string { return &c.Issuer }),
		stringSetting("data", defaultDataDir(), "data directory (holds mcpd.db and admin.sock)", func(c *serveConfig) *string { return &c.Data }),
		{name: "database", env: envName("database"), usage: databaseUsage, set: func(c *serveConfig, v string) error {
			if err := checkDatabaseURL(v); err != nil {
				return err
			}
			c.Database = v
			return nil
		}},
		durationSetting("access-token-ttl", "1h", "access token lifetime", func(c *serveConfig) *time.Duration { return &c.AccessTokenTTL }),
		durationSetting("refresh-token-ttl", "720h", "refresh token lifetime, renewed at each rotation", func(c *serveConfig) *time.Duration { return &c.RefreshTokenTTL }),
		durationSetting("refresh-token-max-ttl", "2160h", "absolute cap on a grant's refresh tokens", func(c *serveConfig) *time.Duration { return &c.RefreshTokenMaxTTL }),
		durationSetting("auth-code-ttl", "60s", "authorization code lifetime", func(c *serveConfig) *time.Duration { return &c.AuthCodeTTL }),
		durationSetting("refresh-grace", "60s", "window in which a rotated refresh token returns the same successor; 0s disables", func(c *serveConfig) *time.Duration { return &c.RefreshGrace }),
		durationSetting("consent-ttl", "720h", "how long a remembered consent lasts", func(c *serveConfig) *time.Duration { return &c.ConsentTTL }),
		durationSetting("session-idle", "12h", "idle expiry of the login session cookie", func(c *serveConfig) *time.Duration { return &c.SessionIdle }),
		durationSetting("session-max-age", "168h", "a login session ends this long after sign-in, however often it is used", func(c *serveConfig) *time.Duration { return &c.SessionMaxAge }),
		boolSetting("password-login", "true", "let people sign in with a local password; false hides the password form and refuses passwords (passkeys and identity providers only)", func(c *serveConfig) *bool { return &c.PasswordLogin }),
		listSetting("cors-origins", "extra browser origins allowed by CORS on metadata, /register, /token, /revoke (loopback origins always are)", func(c *serveConfig) *[]string { return &c.CORSOrigins }),
		listSetting("allowed-origins", "extra Origin values accepted on /mcp (the issuer's and loopback origins always are)", func(c *serveConfig) *[]string { return &c.AllowedOrigins }),
		listSetting("allowed-hosts", "extra Host values accepted on /mcp (the issuer's host and loopback always are)", func(c *serveConfig) *[]string { return &c.AllowedHosts }),
		{name: "trusted-proxies", env: envName("trusted-proxies"), usage: "CIDR prefixes of reverse proxies whose X-Forwarded-For is trusted", set: func(c *serveConfig, v string) error {
			c.TrustedProxies = nil
			for _, s := range splitList(v) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					a, aerr := netip.ParseAddr(s)
					if aerr != nil {
						return fmt.Errorf("%q is not a CIDR prefix or address", s)
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
			return nil
		}},
		boolSetting("client-metadata-documents", "true", "accept https client_ids that point at client ID metadata documents (turn off where mcpd cannot reach the internet: clients then register themselves)", func(c *serveConfig) *bool { return &c.ClientMetadataDocuments }),
		boolSetting("allow-private-metadata-hosts", "false", "let client metadata documents live on private or loopback addresses", func(c *serveConfig) *bool { return &c.AllowPrivateMetadataHosts }),
		intSetting("registrations-per-minute", "20", "dynamic registrations allowed per client address per minute", func(c *serveConfig) *int { return &c.RegistrationsPerMinute }),
		intSetting("max-clients", "1000", "cap on registered clients", func(c *serveConfig) *int { return &c.MaxClients }),
		stringSetting("metrics-listen", "", "address for Prometheus metrics at /metrics (off when empty)", func(c *serveConfig) *string { return &c.MetricsListen }),
		stringSetting("initial-password-file", "", "file holding the password of the first user, admin (else MCPD_INITIAL_PASSWORD, else random and printed once)", func(c *serveConfig) *string { return &c.InitialPasswordFile }),
		{name: "log-format", env: envName("log-format"), def: "auto", usage: "log format: auto (text on a terminal, JSON otherwise), text or json", set: func(c *serveConfig, v string) error {
			switch v {
			case "auto", "text", "json":
				c.LogFormat = v
				return nil
			}
			return fmt.Errorf("want auto, text or json")
		}},
		{name: "log-level", env: envName("log-level"), def: "info", usage: "log level: debug, info, warn or error", set: func(c *serveConfig, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return fmt.Errorf("want debug, info, warn or error")
		}},
		durationSetting("shutdown-timeout", "15s", "how long in-flight requests may take to finish on SIGTERM", func(c *serveConfig) *time.Duration { return &c.ShutdownTimeout }),
		boolSetting("mcp-stateless", "false", "give 2025-era MCP clients no session either (each request stands alone; 2026-07-28 requests never have one)", func(c *serveConfig) *bool { return &c.MCPStateless }),
		boolSetting("mcp-json-response", "false", "answer /mcp POSTs with application/json instead of an event stream", func(c *serveConfig) *bool { return &c.MCPJSONResponse }),
		durationSetting("idp-timeout", "10s", "how long one call to an identity provider (discovery, token, user info) may take", func(c *serveConfig) *time.Duration { return &c.IDPTimeout }),
		durationSetting("janitor-interval", "5m", "how often expired codes, tokens and stale registrations are removed", func(c *serveConfig) *time.Duration { return &c.JanitorInterval }),
		boolSetting("require-dpop", "false", "accept only DPoP-bound tokens (RFC 9449): every /token request needs a DPoP proof and /mcp refuses bearer tokens", func(c *serveConfig) *bool { return &c.RequireDPoP }),
		boolSetting("dpop-nonce", "false", "require server nonces (DPoP-Nonce, rotated every 5 minutes) in DPoP proofs at /token and /mcp", func(c *serveConfig) *bool { return &c.DPoPNonce }),
		// Limits on slow and greedy clients (docs/reliability.md); 0 turns one off.
		durationSetting("read-header-timeout", "10s", "how long a client may take to send a request's headers", func(c *serveConfig) *time.Duration { return &c.ReadHeaderTimeout }),
		durationSetting("read-body-timeout", "30s", "how long a client may take to send a request body, once its headers are in", func(c *serveConfig) *time.Duration { return &c.ReadBodyTimeout }),
		durationSetting("write-timeout", "30s", "how long one write of a response may wait for a client that does not read (event streams stay open while writes go through)", func(c *serveConfig) *time.Duration { return &c.WriteTimeout }),
		durationSetting("idle-timeout", "2m", "how long an idle keep-alive connection stays open", func(c *serveConfig) *time.Duration { return &c.IdleTimeout }),
		intSetting("max-connections", "512", "cap on open client connections (about 20 KB each; raise GOMEMLIMIT with it); more wait until one closes", func(c *serveConfig) *int { return &c.MaxConnections }),
		intSetting("max-connections-per-address", "128", "cap on open connections from one client address, more are answered 503 (IPv6 by /64; trusted proxies have only the total cap)", func(c *serveConfig) *int { return &c.MaxConnectionsPerAddress }),
		intSetting("max-request-bytes", "1048576", "cap on a request body in bytes, the /mcp JSON-RPC body included (authorization server forms and JSON: 64 KiB)", func(c *serveConfig) *int { return &c.MaxRequestBytes }),
		intSetting("registrations-per-minute-total", "200", "dynamic registrations (and, separately, metadata-document fetches) allowed per minute from all addresses together", func(c *serveConfig) *int { return &c.RegistrationsPerMinuteAll }),
		intSetting("mcp-max-sessions-per-user", "64", "MCP sessions one user (or client-credentials client) may hold; at the cap the least recently used idle one is closed", func(c *serveConfig) *int { return &c.MCPMaxSessionsPerUser }),
		intSetting("mcp-max-streams-per-user", "64", "requests one user may have open on /mcp at once (event streams and calls); more get 429", func(c *serveConfig) *int { return &c.MCPMaxStreamsPerUser }),
		{name: "db-check", env: envName("db-check"), def: "auto", usage: "how the database is checked at start-up: quick (every page's structure), full (and bbolt's consistency check) or auto (full up to 64 MiB)", set: func(c *serveConfig, v string) error {
			switch v {
			case "auto":
				c.DBCheck = store.CheckAuto
			case "quick":
				c.DBCheck = store.CheckQuick
			case "full":
				c.DBCheck = store.CheckFull
			default:
				return fmt.Errorf("want auto, quick or full")
			}
			return nil
		}},
	}
}

// defaultDataDir is $XDG_DATA_HOME/mcpd, else ~/.local/share/mcpd, else
// ./data.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mcpd")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" && h != "/" {
		return filepath.Join(h, ".local", "share", "mcpd")
	}
	return "data"
}

// configFile is the optional JSON config file: every serve setting under
// its flag name, plus the api_call upstreams and the identity providers.
type configFile struct {
	settings          map[string]string
	Upstreams         []mcp.Upstream
	IdentityProviders []identityProviderFile
}

// upstreamFile is one upstream as the config file spells it.
type upstreamFile struct {
	Name             string   `json:"name"`
	BaseURL          string   `json:"base_url"`
	Methods          []string `json:"methods"`
	PathPrefixes     []string `json:"path_prefixes"`
	Timeout          string   `json:"timeout"`
	MaxResponseBytes int64    `json:"max_response_bytes"`
	Auth             struct {
		Type             string   `json:"type"`
		BearerEnv        string   `json:"bearer_env"`
		TokenURL         string   `json:"token_url"`
		ClientID         string   `json:"client_id"`
		ClientSecretEnv  string   `json:"client_secret_env"`
		Scopes           []string `json:"scopes"`
		IdentityProvider string   `json:"identity_provider"`
	} `json:"auth"`
}

func (u upstreamFile) upstream() (mcp.Upstream, error) {
	out := mcp.Upstream{
		Name: u.Name, BaseURL: u.BaseURL, Methods: u.Methods, PathPrefixes: u.PathPrefixes, MaxResponseBytes: u.MaxResponseBytes,
		Auth: mcp.UpstreamAuth{Type: u.Auth.Type, BearerEnv: u.Auth.BearerEnv, TokenURL: u.Auth.TokenURL, ClientID: u.Auth.ClientID, ClientSecretEnv: u.Auth.ClientSecretEnv, Scopes: u.Auth.Scopes, IdentityProvider: u.Auth.IdentityProvider},
	}
	if u.Timeout != "" {
		d, err := time.ParseDuration(u.Timeout)
		if err != nil || d <= 0 {
			return out, fmt.Errorf("upstream %q: timeout %q is not a positive duration", u.Name, u.Timeout)
		}
		out.Timeout = d
	}
	switch u.Auth.Type {
	case "", "none", "bearer", "client_credentials":
	case "user":
		if u.Auth.IdentityProvider == "" {
			return out, fmt.Errorf("upstream %q: auth type user needs identity_provider, the name of one of identity_providers", u.Name)
		}
	default:
		return out, fmt.Errorf("upstream %q: auth type %q is not none, bearer, client_credentials or user", u.Name, u.Auth.Type)
	}
	return out, nil
}

func readConfigFile(path string, known map[string]bool) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	cf := &configFile{settings: map[string]string{}}
	for k, v := range raw {
		if k == "upstreams" {
			d := json.NewDecoder(bytes.NewReader(v))
			d.DisallowUnknownFields()
			var ups []upstreamFile
			if err := d.Decode(&ups); err != nil {
				return nil, fmt.Errorf("config file %s: upstreams: %w", path, err)
			}
			for _, u := range ups {
				mu, err := u.upstream()
				if err != nil {
					return nil, fmt.Errorf("config file %s: %w", path, err)
				}
				cf.Upstreams = append(cf.Upstreams, mu)
			}
			continue
		}
		if k == "identity_providers" {
			ps, err := parseIdentityProviders(v)
			if err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
			cf.IdentityProviders = ps
			continue
		}
		if !known[k] {
			return nil, fmt.Errorf("config file %s: unknown setting %q", path, k)
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			cf.settings[k] = s
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err == nil {
			cf.settings[k] = strings.Join(list, ",")
			continue
		}
		cf.settings[k] = strings.TrimSpace(string(v)) // numbers and booleans
	}
	return cf, nil
}

// bareBoolsTrue returns args with "true" after every boolean setting's
// flag that is not followed by a value (the next argument is missing, a
// flag, or not a boolean), so that --require-dpop reads as
// --require-dpop true.
func bareBoolsTrue(settings []setting, args []string) []string {
	boolean := map[string]bool{}
	for _, s := range settings {
		if s.boolean {
			boolean[s.name] = true
		}
	}
	out := make([]string, 0, len(args)+2)
	for i, a := range args {
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		name := strings.TrimLeft(a, "-")
		if !strings.HasPrefix(a, "-") || strings.Contains(name, "=") || !boolean[name] {
			continue
		}
		if i+1 < len(args) {
			if _, err := strconv.ParseBool(args[i+1]); err == nil {
				continue
			}
		}
		out = append(out, "true")
	}
	return out
}

// loadServeConfig applies defaults, then the config file (--config or
// MCPD_CONFIG), then the environment, then the flags. Every error names the
// setting and is a usage error (exit code 2).
func loadServeConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (*serveConfig, error) {
	settings := serveSettings()
	flagVals := map[string]*string{}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.name] = true
		v := new(string)
		flagVals[s.name] = v
		usage := s.usage + " (env " + s.env + ")"
		fs.StringVar(v, s.name, s.def, usage)
	}
	configPath := fs.String("config", "", "JSON config file: any setting by its flag name, plus \"upstreams\" and \"identity_providers\" (env MCPD_CONFIG)")
	pos, err := parseInterleaved(fs, bareBoolsTrue(settings, args))
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usageError(fmt.Sprintf("serve takes no arguments, got %q", pos[0]))
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	c := &serveConfig{}
	apply := func(s setting, v, from string) error {
		if err := s.set(c, v); err != nil {
			return usageError(fmt.Sprintf("invalid %s %q: %v", from, v, err))
		}
		return nil
	}
	for _, s := range settings {
		if s.def != "" || s.name == "issuer" {
			if err := apply(s, s.def, "default of --"+s.name); err != nil {
				return nil, err
			}
		}
	}
	path := *configPath
	if !setFlags["config"] {
		path = getenv("MCPD_CONFIG")
	}
	if path != "" {
		cf, err := readConfigFile(path, known)
		if err != nil {
			return nil, usageError(err.Error())
		}
		c.ConfigFile = path
		c.Upstreams = cf.Upstreams
		c.identityProviderFiles = cf.IdentityProviders
		for _, s := range settings {
			if v, ok := cf.settings[s.name]; ok {
				if err := apply(s, v, "config key "+s.name); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, s := range settings {
		if v := getenv(s.env); v != "" && !setFlags[s.name] {
			if err := apply(s, v, s.env); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range settings {
		if setFlags[s.name] {
			if err := apply(s, *flagVals[s.name], "--"+s.name); err != nil {
				return nil, err
			}
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	if err := c.checkIdentityProviders(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// finish derives defaults that depend on other settings and checks the
// whole.
func (c *serveConfig) finish() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return usageError(fmt.Sprintf("invalid --listen %q: want host:port", c.Listen))
	}
	if c.Issuer == "" {
		c.Issuer = "http://" + net.JoinHostPort(loopbackFor(host), port)
		c.IssuerDerived = true
	}
	if err := checkIssuer(c.Issuer); err != nil {
		return usageError(fmt.Sprintf("invalid --issuer %q: %v", c.Issuer, err))
	}
	if c.Data == "" {
		return usageError("invalid --data: empty")
	}
	if c.AccessTokenTTL == 0 || c.AuthCodeTTL == 0 || c.RefreshTokenTTL == 0 {
		return usageError("token lifetimes (--access-token-ttl, --refresh-token-ttl, --auth-code-ttl) must be above zero")
	}
	if c.RefreshTokenMaxTTL < c.RefreshTokenTTL {
		return usageError(fmt.Sprintf("invalid --refresh-token-max-ttl %s: below --refresh-token-ttl %s", c.RefreshTokenMaxTTL, c.RefreshTokenTTL))
	}
	if c.MaxRequestBytes == 0 {
		return usageError("invalid --max-request-bytes 0: must be above zero")
	}
	if c.IDPTimeout == 0 {
		return usageError("invalid --idp-timeout 0s: must be above zero")
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return usageError(fmt.Sprintf("invalid --metrics-listen %q: want host:port", c.MetricsListen))
		}
	}
	names := map[string]bool{}
	for i, u := range c.Upstreams {
		if u.Name == "" || names[u.Name] {
			return usageError(fmt.Sprintf("invalid upstreams[%d]: missing or repeated name", i))
		}
		names[u.Name] = true
		if pu, err := url.Parse(u.BaseURL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return usageError(fmt.Sprintf("invalid upstreams[%d] (%s): base URL %q is not an http(s) URL", i, u.Name, u.BaseURL))
		}
	}
	return nil
}

// checkIssuer enforces RFC 8414 §2: an http(s) URL with no query, fragment
// or trailing slash.
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http or https URL")
	case u.Host == "":
		return errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") || strings.Contains(s, "?"):
		return errors.New("no query or fragment allowed")
	case strings.HasSuffix(s, "/"):
		return errors.New("no trailing slash allowed")
	case u.User != nil:
		return errors.New("no user info allowed")
	case !issuerPathRE.MatchString(u.EscapedPath()):
		// The path is a proxy's prefix, a cookie path and part of route
		// patterns: plain segments only.
		return errors.New("a path must be plain segments such as /mcpd (letters, digits, - . _ ~), without empty, . or .. segments")
	}
	return nil
}

// issuerPathRE is the path an issuer may have: none, or plain segments.
var issuerPathRE = regexp.MustCompile(`^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*$`)

// loopbackFor maps a wildcard listen host to the loopback address a local
// client uses.
func loopbackFor(host string) string {
	switch host {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return host
}
