package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where the MCP endpoint is served; the resource identifier is the
// issuer followed by Path.
const Path = "/mcp"

// defaultMaxBodyBytes bounds a request body when Config.MaxBodyBytes is 0.
const defaultMaxBodyBytes = 1 << 20

// Config configures a Server. Issuer, Verifier and Notes are required.
type Config struct {
	// Issuer is the public base URL without a trailing slash. The resource
	// identifier is Issuer + "/mcp"; the protected-resource metadata names
	// Issuer as the only authorization server.
	Issuer string
	// Verifier checks a bearer token. It returns an error wrapping
	// auth.ErrInvalidToken for a bad, expired, revoked or wrong-audience
	// token, one wrapping ErrUnavailable when it cannot tell now (its
	// storage does not answer), and TokenInfo.UserID is the owner of
	// notes.
	Verifier auth.TokenVerifier
	// Notes persists notes per owner.
	Notes NotesStore
	// Upstreams are the APIs the api_call tool may reach.
	Upstreams []Upstream
	// UserTokens hands out users' tokens at identity providers for the
	// upstreams of auth type "user"; required only when there are such.
	UserTokens UserTokens
	// AllowedOrigins are Origin values accepted besides the issuer's origin
	// and loopback origins, e.g. "https://inspector.example.com".
	AllowedOrigins []string
	// AllowedHosts are Host values accepted besides the issuer's host and
	// loopback hosts, e.g. "mcp.internal:8080".
	AllowedHosts []string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient makes upstream calls and upstream token requests; nil
	// means a client with no default timeout (each upstream has its own).
	HTTPClient *http.Client
	// Stateless serves every request without a session, 2025-era clients
	// included (the go-sdk's StreamableHTTPOptions.Stateless). By default
	// 2025-era clients get sessions and 2026-07-28 requests, which have
	// none, are served statelessly side by side (see dispatch).
	Stateless bool
	// JSONResponse is the go-sdk's StreamableHTTPOptions.JSONResponse.
	JSONResponse bool
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// MaxSessionsPerUser caps the live sessions of one principal
	// (TokenInfo.UserID): at the cap an initialize closes that principal's
	// least recently used idle session, or is answered 429 when none is
	// idle. 0 means no cap.
	MaxSessionsPerUser int
	// MaxStreamsPerUser caps the requests one principal has open on /mcp
	// at once, event streams included; more are answered 429. 0 means no
	// cap.
	MaxStreamsPerUser int
	// DPoP, when not nil, makes the endpoint accept DPoP-bound tokens
	// (RFC 9449): "Authorization: DPoP <token>" with a DPoP proof. The
	// Verifier reports a token's binding in TokenInfo.Extra[ExtraJKT].
	DPoP ProofChecker
	// RequireDPoP refuses bearer tokens; it needs DPoP.
	RequireDPoP bool
	// Extension adds tools, resources and prompts beyond mcpd's own; nil
	// for mcpd serve.
	Extension *Extension
}

// Extension adds features to the MCP server beyond mcpd's own tools,
// resources and prompt. `mcpd serve` sets none; the conformance fixture
// server under e2e/conformance registers the suite's fixtures through it,
// so that they are served by mcpd's real /mcp handler.
//
// Whatever an Extension adds sits behind the same Origin and Host checks,
// bearer middleware and dispatcher as mcpd's own features, and its
// handlers see the verified token in req.Extra.TokenInfo. The scope check
// knows only toolRegistry's tools, so a tool added here needs nothing but
// a valid token; a handler that wants a scope checks it itself.
type Extension struct {
	// Options, if set, edits the go-sdk server options after mcpd has set
	// its own and before the server is made: a completion or subscribe
	// handler, say.
	Options func(*sdk.ServerOptions)
	// Register, if set, adds tools, resources and prompts after mcpd's
	// own. A resource it adds is listed by resources/list ahead of the
	// caller's notes.
	Register func(*sdk.Server)
}

// Server is the MCP endpoint with its protected-resource metadata. Create
// one with New and mount it with Register.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	resource string // Issuer + Path
	// issuerScheme and issuerPath are the issuer's scheme and path: with
	// another host name of the endpoint they make the other URL a DPoP
	// proof's htu may name (checkProof).
	issuerScheme string
	issuerPath   string
	// proofURLs is the URL a proof's htu names when the request came
	// under the issuer's own host: the resource.
	proofURLs []string
	prmURL    string // Issuer + "/.well-known/oauth-protected-resource/mcp"
	tools     map[string]tool
	upstreams map[string]*upstream
	origins   originPolicy
	mcp       *sdk.Server
	// shared are the sessions of the direct path; nil without it.
	shared  *sharedSessions
	handler http.Handler // the /mcp handler with every check
	users   *userLimits
}

// New validates cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	return newServer(cfg, true)
}

// newServer builds a Server; with authenticate false the bearer middleware
// is replaced by a fixed token carrying every scope (for benchmarks only).
func newServer(cfg Config, authenticate bool) (*Server, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("mcp: Config.Verifier is required")
	}
	if cfg.Notes == nil {
		return nil, errors.New("mcp: Config.Notes is required")
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	iu, err := url.Parse(issuer)
	if err != nil || (iu.Scheme != "http" && iu.Scheme != "https") || iu.Host == "" {
		return nil, fmt.Errorf("mcp: Config.Issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	cfg.Issuer = issuer
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMaxBodyBytes
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		now:          cfg.Now,
		resource:     issuer + Path,
		prmURL:       issuer + prmPath + Path,
		issuerScheme: iu.Scheme,
		issuerPath:   iu.EscapedPath(),
		proofURLs:    []string{issuer + Path},
	}
	if cfg.RequireDPoP && cfg.DPoP == nil {
		return nil, errors.New("mcp: Config.RequireDPoP needs Config.DPoP")
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.origins, err = newOriginPolicy(iu, cfg.AllowedOrigins, cfg.AllowedHosts)
	if err != nil {
		return nil, err
	}
	s.upstreams, err = newUpstreams(cfg.Upstreams, cfg.HTTPClient, cfg.UserTokens)
	if err != nil {
		return nil, err
	}

	opts := &sdk.ServerOptions{
		Instructions: "Personal notes (note_* tools, note:// resources, summarize_notes prompt) and operator-configured upstream APIs (api_call). Each tool names the OAuth scope it needs.",
		Logger:       s.log,
		SetCacheable: cacheHints,
	}
	if ext := cfg.Extension; ext != nil && ext.Options != nil {
		ext.Options(opts)
	}
	s.mcp = sdk.NewServer(&sdk.Implementation{Name: "mcpd", Title: "mcpd notes", Version: "1.0.0"}, opts)
	s.tools = make(map[string]tool)
	for _, t := range s.toolRegistry() {
		if _, dup := s.tools[t.name]; dup {
			return nil, fmt.Errorf("mcp: tool %q declared twice", t.name)
		}
		s.tools[t.name] = t
		t.add(s.mcp)
	}
	s.addResources()
	s.addPrompts()
	if ext := cfg.Extension; ext != nil && ext.Register != nil {
		ext.Register(s.mcp)
	}

	newHandler := func(stateless, jsonResponse bool) http.Handler {
		h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.mcp }, &sdk.StreamableHTTPOptions{
			Stateless:    stateless,
			JSONResponse: jsonResponse,
			Logger:       s.log,
			// Host and Origin are checked by s.checkOrigin against the
			// issuer and the configured extras; the SDK's loopback-only
			// rule would refuse an issuer served behind a reverse proxy.
			DisableLocalhostProtection: true,
			MaxRequestBodyBytes:        cfg.MaxBodyBytes,
		})
		// The SDK binds sessions to auth.TokenInfo.UserID, which it reads
		// from a context key only auth.RequireBearerToken can set. Our
		// bearer middleware has verified the token already; this hands the
		// same TokenInfo over.
		bind := auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
			return verifiedTokenInfo(r.Context())
		}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
		return bind(h)
	}
	eras := eraHandlers{stateless: newHandler(true, cfg.JSONResponse), statelessJSON: newHandler(true, true)}
	if cfg.Extension == nil {
		// An Extension may change the server's options and handlers in
		// ways the direct path does not know of; its server goes the
		// go-sdk's way alone.
		s.shared = newSharedSessions(s.mcp, directSessions, modernSessionState)
		eras.direct = s.directHandler(eras.statelessJSON)
	}
	if !cfg.Stateless {
		eras.sessions = newHandler(false, cfg.JSONResponse)
	}
	s.users = newUserLimits(cfg.MaxSessionsPerUser, cfg.MaxStreamsPerUser, s.mcp, s.now)
	h := s.readInbound(s.requireScopes(s.users.middleware(cfg.Stateless, dispatch(eras))))
	if authenticate {
		h = s.requireBearer(h)
	} else {
		h = withFixedToken(h, &auth.TokenInfo{UserID: "bench", Scopes: Scopes(), Expiration: time.Now().Add(24 * time.Hour), Extra: map[string]any{"client_id": "bench"}})
	}
	s.handler = s.checkOrigin(h)
	return s, nil
}

// Register mounts POST, GET and DELETE /mcp (and its CORS preflight) and the
// protected-resource metadata at /.well-known/oauth-protected-resource/mcp
// and /.well-known/oauth-protected-resource. With an issuer that has a
// path (https://host/mcpd) the metadata is also at the RFC 9728 §3.1
// location, /.well-known/oauth-protected-resource/mcpd/mcp, for a proxy
// that forwards it unchanged; the challenge names the one under the
// issuer, which any prefix proxy forwards.
func (s *Server) Register(r *mux.Router) {
	r.Handle(Path, s.handler).Methods(http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodOptions)
	prm := s.prmHandler()
	r.Handle(prmPath+Path, prm).Methods(http.MethodGet, http.MethodOptions)
	r.Handle(prmPath, prm).Methods(http.MethodGet, http.MethodOptions)
	if u, err := url.Parse(s.cfg.Issuer); err == nil && u.Path != "" {
		r.Handle(prmPath+u.Path+Path, prm).Methods(http.MethodGet, http.MethodOptions)
	}
}

// Handler returns the /mcp handler alone, with every check in place.
func (s *Server) Handler() http.Handler { return s.handler }

// Scopes returns every scope the MCP endpoint knows, for scopes_supported.
func Scopes() []string {
	return []string{ScopeNotesRead, ScopeNotesWrite, ScopeAPICall}
}
