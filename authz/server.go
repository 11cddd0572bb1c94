package authz

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/keymutex"
	"github.com/mcpd/mcpd/web"
)

// Scope is one OAuth scope the server knows, with the plain words the
// consent page shows for it.
type Scope struct {
	Name        string
	Description string
}

// Observer receives counts for metrics. A nil Observer is a no-op.
type Observer interface {
	TokenIssued(grantType string)
	TokenVerified(outcome string)
	ClientRegistered(source string)
}

// Config configures the authorization server. Zero values mean defaults
// where the field comment says so.
type Config struct {
	// Issuer is the public base URL, e.g. http://127.0.0.1:8080, without a
	// trailing slash. It is used byte for byte everywhere.
	Issuer   string
	Storage  Storage
	Renderer *web.Renderer
	Logger   *slog.Logger
	Now      func() time.Time
	// GlobalSecret is the HMAC key of fosite's token strategy, ≥ 32 bytes.
	GlobalSecret []byte
	Scopes       []Scope

	// Lifetimes; 0 → 1h, 30d, 90d, 60s.
	AccessTokenLifespan     time.Duration
	RefreshTokenLifespan    time.Duration
	RefreshTokenMaxLifespan time.Duration
	AuthorizeCodeLifespan   time.Duration
	// RefreshGrace is taken as is: 0 disables the grace window.
	RefreshGrace time.Duration
	// ConsentLifetime is how long a remembered consent lasts; 0 → 30 days.
	ConsentLifetime time.Duration
	// SessionIdleTimeout ends a login session after this much idleness; 0 → 12h.
	SessionIdleTimeout time.Duration
	// SessionMaxAge ends a login session this long after sign-in, however
	// often it is used; 0 → 7 days.
	SessionMaxAge time.Duration
	// DisablePasswordLogin hides the password form and refuses local
	// passwords: people sign in with a passkey or an identity provider.
	DisablePasswordLogin bool

	// CORSOrigins are extra browser origins allowed on the metadata,
	// /register, /token and /revoke; loopback origins are always allowed.
	CORSOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For is honoured.
	TrustedProxies []netip.Prefix

	// ClientMetadataDocuments enables https client_ids (CIMD).
	ClientMetadataDocuments   bool
	AllowPrivateMetadataHosts bool
	// HTTPClient fetches client metadata documents; nil → a client with
	// timeouts whose dialer refuses private and loopback addresses unless
	// AllowPrivateMetadataHosts is set.
	HTTPClient *http.Client

	// RegistrationsPerMinute per client address, for registrations and,
	// separately, for fetches of client metadata documents; 0 → 20.
	RegistrationsPerMinute int
	// RegistrationsPerMinuteAll caps registrations, and separately fetches
	// of client metadata documents, per minute from all addresses
	// together, so that a flood from many addresses stays bounded; 0 → no
	// cap beyond the per-address one.
	RegistrationsPerMinuteAll int
	// MaxClients caps the number of registered clients; 0 → 1000.
	MaxClients int

	Observer Observer

	// DPoP checks DPoP proofs (RFC 9449) at /token; nil: the server does
	// not offer DPoP, ignores DPoP headers and dpop_jkt, and issues bearer
	// tokens only. The resource server must use the same Checker.
	DPoP *dpop.Checker
	// RequireDPoP refuses every token request without a DPoP proof.
	RequireDPoP bool

	// IdentityProviders are the upstream identity providers people may
	// sign in with, besides a password; each needs Identities.
	IdentityProviders []IdentityProvider
	// Identities keeps linked identities and sign-ins in progress.
	Identities IdentityStore
	// UpstreamTokens keeps the token a provider gave at sign-in, for
	// api_call; nil keeps none.
	UpstreamTokens UpstreamTokenSaver
	// IdentityProviderTimeout bounds the provider calls of one sign-in
	// step; 0 → 15 s.
	IdentityProviderTimeout time.Duration
}

// Server is the authorization server. Create it with New.
type Server struct {
	cfg         Config
	issuer      string
	issuerPath  string // the issuer URL's path, "" for none: where a prefix proxy serves mcpd
	resourceURL string
	store       Storage
	fstore      *fositeStore
	oauth       *fosite.Fosite
	strategy    *strategy
	fcfg        *fosite.Config
	renderer    *web.Renderer
	log         *slog.Logger
	now         func() time.Time
	obs         Observer
	scopes      map[string]string // name → description
	scopeOrder  []string
	hasher      *secretHasher
	sealKey     []byte // salt for deriving successor sealing keys
	csrfKey     []byte
	cors        *corsPolicy

	loginLinks    []loginLink // extra sign-in methods on the login page
	passkeys      passkeyRP
	ceremonies    *limiter // passkey ceremonies begun per client address
	loginUser     *limiter
	loginAddr     *limiter
	registrations *limiter
	cimdFetches   *limiter
	// registrationsAll and cimdFetchesAll count every address under one
	// key; nil when RegistrationsPerMinuteAll is 0.
	registrationsAll *limiter
	cimdFetchesAll   *limiter
	refreshLocks     *keymutex.Mutex
	codeLocks        *keymutex.Mutex
	cimd             *cimdFetcher
	dpop             *dpop.Checker

	idps           map[string]*IdentityProvider
	identities     IdentityStore
	upstreamTokens UpstreamTokenSaver
	idpKey         []byte
	idpTimeout     time.Duration
	idpStarts      *limiter

	pendingStarts *limiter        // authorization requests left for sign-in per client address
	passkeyLocks  *keymutex.Mutex // passkey additions, per user
}

const (
	defaultAccessTokenLifespan     = time.Hour
	defaultRefreshTokenLifespan    = 30 * 24 * time.Hour
	defaultRefreshTokenMaxLifespan = 90 * 24 * time.Hour
	defaultAuthorizeCodeLifespan   = 60 * time.Second
	defaultConsentLifetime         = 30 * 24 * time.Hour
	defaultSessionIdleTimeout      = 12 * time.Hour
	defaultSessionMaxAge           = 7 * 24 * time.Hour
	defaultRegistrationsPerMinute  = 20
	defaultMaxClients              = 1000

	maxFormBody = 64 << 10
	maxJSONBody = 64 << 10
)

// New checks cfg, fills in defaults and composes fosite.
func New(cfg Config) (*Server, error) {
	if cfg.Storage == nil {
		return nil, errors.New("authz: Storage is required")
	}
	if cfg.Renderer == nil {
		return nil, errors.New("authz: Renderer is required")
	}
	if len(cfg.GlobalSecret) < 32 {
		return nil, errors.New("authz: GlobalSecret must be at least 32 bytes")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(cfg.Issuer, "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authz: issuer %q must be an absolute http(s) URL without a trailing slash", cfg.Issuer)
	}
	if len(cfg.Scopes) == 0 {
		return nil, errors.New("authz: at least one scope is required")
	}
	if got := cfg.Renderer.BasePath(); got != u.Path {
		return nil, fmt.Errorf("authz: the Renderer's base path %q is not the issuer's path %q (web.WithBasePath)", got, u.Path)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AccessTokenLifespan == 0 {
		cfg.AccessTokenLifespan = defaultAccessTokenLifespan
	}
	if cfg.RefreshTokenLifespan == 0 {
		cfg.RefreshTokenLifespan = defaultRefreshTokenLifespan
	}
	if cfg.RefreshTokenMaxLifespan == 0 {
		cfg.RefreshTokenMaxLifespan = defaultRefreshTokenMaxLifespan
	}
	if cfg.AuthorizeCodeLifespan == 0 {
		cfg.AuthorizeCodeLifespan = defaultAuthorizeCodeLifespan
	}
	if cfg.ConsentLifetime == 0 {
		cfg.ConsentLifetime = defaultConsentLifetime
	}
	if cfg.SessionIdleTimeout == 0 {
		cfg.SessionIdleTimeout = defaultSessionIdleTimeout
	}
	if cfg.SessionMaxAge == 0 {
		cfg.SessionMaxAge = defaultSessionMaxAge
	}
	if cfg.SessionIdleTimeout < 0 || cfg.SessionMaxAge < 0 {
		return nil, errors.New("authz: SessionIdleTimeout and SessionMaxAge must not be negative")
	}
	if cfg.RegistrationsPerMinute == 0 {
		cfg.RegistrationsPerMinute = defaultRegistrationsPerMinute
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = defaultMaxClients
	}
	if cfg.RefreshGrace < 0 {
		return nil, errors.New("authz: RefreshGrace must not be negative")
	}

	s := &Server{
		cfg:         cfg,
		issuer:      cfg.Issuer,
		issuerPath:  u.Path,
		resourceURL: cfg.Issuer + "/mcp",
		store:       cfg.Storage,
		renderer:    cfg.Renderer,
		log:         cfg.Logger,
		now:         cfg.Now,
		obs:         cfg.Observer,
		scopes:      make(map[string]string, len(cfg.Scopes)),
		dpop:        cfg.DPoP,
	}
	if cfg.RequireDPoP && cfg.DPoP == nil {
		return nil, errors.New("authz: RequireDPoP needs a DPoP checker")
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	for _, sc := range cfg.Scopes {
		if sc.Name == "" || strings.ContainsAny(sc.Name, " \"\\") {
			return nil, fmt.Errorf("authz: bad scope name %q", sc.Name)
		}
		if _, dup := s.scopes[sc.Name]; dup {
			return nil, fmt.Errorf("authz: duplicate scope %q", sc.Name)
		}
		s.scopes[sc.Name] = sc.Description
		s.scopeOrder = append(s.scopeOrder, sc.Name)
	}

	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, cfg.GlobalSecret, nil, "mcpd authz "+info, 32)
	}
	hashKey, err := derive("client secret")
	if err != nil {
		return nil, err
	}
	if s.sealKey, err = derive("refresh successor"); err != nil {
		return nil, err
	}
	if s.csrfKey, err = derive("csrf"); err != nil {
		return nil, err
	}
	bindKey, err := derive("refresh binding")
	if err != nil {
		return nil, err
	}
	s.hasher = &secretHasher{key: hashKey}
	if s.idpKey, err = derive("idp sign-in"); err != nil {
		return nil, err
	}
	if err := s.setIdentityProviders(cfg); err != nil {
		return nil, err
	}
	handleKey, err := derive("webauthn user handle")
	if err != nil {
		return nil, err
	}
	if s.passkeys, err = newPasskeyRP(cfg.Issuer, handleKey); err != nil {
		return nil, err
	}

	if s.cors, err = newCORSPolicy(cfg.CORSOrigins); err != nil {
		return nil, err
	}
	s.loginUser = newLimiter(5, 15*time.Minute, s.now)
	s.loginAddr = newLimiter(20, 15*time.Minute, s.now)
	s.ceremonies = newLimiter(maxCeremoniesPerMinute, time.Minute, s.now)
	s.pendingStarts = newLimiter(maxVisitorRequestsPerMinute, time.Minute, s.now)
	s.registrations = newLimiter(cfg.RegistrationsPerMinute, time.Minute, s.now)
	s.cimdFetches = newLimiter(cfg.RegistrationsPerMinute, time.Minute, s.now)
	if cfg.RegistrationsPerMinuteAll > 0 {
		s.registrationsAll = newLimiter(cfg.RegistrationsPerMinuteAll, time.Minute, s.now)
		s.cimdFetchesAll = newLimiter(cfg.RegistrationsPerMinuteAll, time.Minute, s.now)
	}
	s.refreshLocks = &keymutex.Mutex{}
	s.codeLocks = &keymutex.Mutex{}
	s.passkeyLocks = &keymutex.Mutex{}
	s.cimd = newCIMDFetcher(s, cfg.HTTPClient, cfg.AllowPrivateMetadataHosts)

	s.fcfg = &fosite.Config{
		AccessTokenLifespan:         cfg.AccessTokenLifespan,
		RefreshTokenLifespan:        cfg.RefreshTokenLifespan,
		AuthorizeCodeLifespan:       cfg.AuthorizeCodeLifespan,
		GlobalSecret:                cfg.GlobalSecret,
		ClientSecretsHasher:         s.hasher,
		ScopeStrategy:               fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:    s.matchAudience,
		EnforcePKCE:                 true,
		EnforcePKCEForPublicClients: true,
		RefreshTokenScopes:          []string{},
		TokenURL:                    s.issuer + "/token",
		AccessTokenIssuer:           s.issuer,
		IDTokenIssuer:               s.issuer,
		RedirectSecureChecker:       fosite.IsRedirectURISecureStrict,
	}
	s.fcfg.RedirectSecureChecker = func(ctx context.Context, u *url.URL) bool {
		// https, loopback http and private-use schemes; registration
		// already refused anything else.
		return u.Scheme != "http" || isLoopbackHost(u.Hostname())
	}
	s.fstore = &fositeStore{Storage: cfg.Storage, s: s}
	s.strategy = &strategy{HMACSHAStrategy: compose.NewOAuth2HMACStrategy(s.fcfg), bindKey: bindKey}
	s.oauth = compose.Compose(s.fcfg, s.fstore, s.strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2PKCEFactory,
	).(*fosite.Fosite)
	return s, nil
}

// ResourceURL is the MCP resource identifier: Issuer + "/mcp".
func (s *Server) ResourceURL() string { return s.resourceURL }

// Register mounts the authorization server's routes on r.
func (s *Server) Register(r *mux.Router) {
	meta := s.cors.wrap(http.HandlerFunc(s.handleMetadata))
	oidc := s.cors.wrap(http.HandlerFunc(s.handleOpenIDConfiguration))
	get := []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	// With an issuer that has a path, e.g. https://host/mcpd behind a
	// proxy that strips /mcpd, clients try in turn (MCP 2026-07-28):
	//   /.well-known/oauth-authorization-server/mcpd  RFC 8414 §3.1, path inserted
	//   /.well-known/openid-configuration/mcpd        the same for OpenID Connect
	//   /mcpd/.well-known/openid-configuration        OpenID Connect Discovery §4,
	// the last reaching mcpd as /.well-known/openid-configuration. The
	// first two need the proxy to forward them unchanged (docs/operations.md).
	r.Handle("/.well-known/oauth-authorization-server", meta).Methods(get...)
	r.Handle("/.well-known/openid-configuration", oidc).Methods(get...)
	if p := s.issuerPath; p != "" {
		r.Handle("/.well-known/oauth-authorization-server"+p, meta).Methods(get...)
		r.Handle("/.well-known/openid-configuration"+p, oidc).Methods(get...)
	}
	r.Handle(jwksPath, s.cors.wrap(http.HandlerFunc(s.handleJWKS))).Methods(get...)
	r.Handle("/authorize", s.withLimitKey(s.handleAuthorize)).Methods(http.MethodGet)
	r.Handle(loginPath, s.ownPagesOnly(s.withLimitKey(s.handlePasswordLogin))).Methods(http.MethodPost)
	r.Handle(accountPath, s.ownPagesOnly(s.withLimitKey(s.handleAccount))).Methods(http.MethodGet, http.MethodPost)
	r.Handle(passkeyAddBeginPath, s.ownPagesOnly(s.withLimitKey(s.handlePasskeyRegisterBegin))).Methods(http.MethodPost)
	r.Handle(passkeyLoginBeginPath, s.ownPagesOnly(s.withLimitKey(s.handlePasskeyLoginBegin))).Methods(http.MethodPost)
	r.Handle(passkeyLoginPath, s.ownPagesOnly(s.withLimitKey(s.handlePasskeyLogin))).Methods(http.MethodPost)
	r.Handle(consentPath, s.ownPagesOnly(s.withLimitKey(s.handleConsent))).Methods(http.MethodPost)
	r.Handle("/token", s.cors.wrap(s.withLimitKey(s.handleToken))).Methods(http.MethodPost, http.MethodOptions)
	r.Handle("/register", s.cors.wrap(http.HandlerFunc(s.handleRegister))).Methods(http.MethodPost, http.MethodOptions)
	r.Handle("/register/{id}", s.cors.wrap(http.HandlerFunc(s.handleRegistration))).Methods(http.MethodGet, http.MethodDelete, http.MethodOptions)
	r.Handle("/revoke", s.cors.wrap(s.withLimitKey(s.handleRevoke))).Methods(http.MethodPost, http.MethodOptions)
	r.Handle("/introspect", s.withLimitKey(s.handleIntrospect)).Methods(http.MethodPost)
	r.Handle(idpLoginPrefix+"{name}", s.withLimitKey(s.handleIDPStart)).Methods(http.MethodGet)
	r.Handle(idpLoginPrefix+"{name}/callback", s.withLimitKey(s.handleIDPCallback)).Methods(http.MethodGet)
	r.PathPrefix("/static/").Handler(s.renderer.StaticHandler())
}

// matchAudience is fosite's audience strategy: the only audience this server
// grants is its MCP resource.
func (s *Server) matchAudience(_ []string, needle []string) error {
	for _, a := range needle {
		if a != s.resourceURL {
			return errInvalidTarget("the requested audience is not a resource of this server")
		}
	}
	return nil
}

// knownScopes returns the names in scopes this server knows, in order and
// without duplicates.
func (s *Server) knownScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if _, ok := s.scopes[sc]; ok && !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type nopObserver struct{}

func (nopObserver) TokenIssued(string)      {}
func (nopObserver) TokenVerified(string)    {}
func (nopObserver) ClientRegistered(string) {}

// clientAddr is the address a request came from: the peer, or the last
// X-Forwarded-For hop not in TrustedProxies when the peer is trusted.
func (s *Server) clientAddr(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = peer.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = a.Unmap()
	} else {
		return r.RemoteAddr
	}
	if !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		h = h.Unmap()
		if !s.trusted(h) {
			return h.String()
		}
		addr = h
	}
	return addr.String()
}

// limitKey is the rate-limit key of a request's client address: the
// address itself for IPv4, its /64 for IPv6, since one host commonly holds
// a whole /64 and could otherwise step round per-address limits.
func (s *Server) limitKey(r *http.Request) string {
	addr := s.clientAddr(r)
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() {
		return addr
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

type limitKeyCtx struct{}

// withLimitKey records the request's rate-limit key in its context, for
// work done deep inside fosite on the client's behalf (fetching a client
// metadata document while looking up a client).
func (s *Server) withLimitKey(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), limitKeyCtx{}, s.limitKey(r))))
	})
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
