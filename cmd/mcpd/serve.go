package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/dpop"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/web"
)

const serveUsage = `Usage: mcpd serve [flags]

Runs the MCP endpoint (ISSUER/mcp) and its OAuth 2.1 authorization server.
Every setting is a flag, an MCPD_* environment variable, or a key of the
JSON file given with --config; a flag beats the environment beats the file.`

// scopeDescriptions are the scopes in the words the consent page shows.
var scopeDescriptions = []authz.Scope{
	{Name: "notes:read", Description: "Read your notes"},
	{Name: "notes:write", Description: "Create, change and delete your notes"},
	{Name: "api:call", Description: "Call the upstream APIs this server is configured for, on your behalf"},
}

func (e cliEnv) serve(args []string) error {
	fs := newFlagSet("serve", e.stderr, serveUsage)
	cfg, err := loadServeConfig(fs, args, e.getenv)
	if err != nil {
		return err
	}
	cfg.now = e.now
	logger := newLogger(e.stderr, cfg.LogFormat, cfg.LogLevel)
	srv, err := newServer(e.ctx, cfg, logger, e.getenv)
	if err != nil {
		return err
	}
	return srv.run(e.ctx, e.stderr)
}

// server is a configured mcpd with its store open and its listeners bound.
type server struct {
	cfg             *serveConfig
	logger          *slog.Logger
	store           store.Backend
	httpSrv         *http.Server
	ln              net.Listener
	adminSrv        *http.Server
	adminLn         net.Listener
	adminSock       string
	metrics         *metrics
	streams         *eventStreams
	metricsSrv      *http.Server
	metricsLn       net.Listener
	conns           *connLimits
	initialPassword string     // generated for the banner; empty otherwise
	firstUser       *firstUser // started by run
	dpopReplay      *dpop.WriteBehind
}

// newServer opens the store, decides the first user's password when there
// is no user, composes authz and mcp, and binds the listeners; nothing is
// served, and the first user is not created, until run.
func newServer(ctx context.Context, cfg *serveConfig, logger *slog.Logger, getenv func(string) string) (_ *server, err error) {
	s := &server{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	lc := net.ListenConfig{Control: deferAccept(cfg.ReadHeaderTimeout)}
	if s.ln, err = lc.Listen(ctx, "tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.IssuerDerived {
		// With port 0 the issuer can only be known once the port is bound.
		host, _, _ := net.SplitHostPort(cfg.Listen)
		_, port, _ := net.SplitHostPort(s.ln.Addr().String())
		cfg.Issuer = "http://" + net.JoinHostPort(loopbackFor(host), port)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if s.store, err = openBackend(ctx, cfg.Database, cfg.Data, logger, true, cfg.DBCheck); err != nil {
		return nil, err
	}
	if cfg.Database != "" && !cfg.MCPStateless {
		logger.Warn("MCP sessions live in this process's memory: behind a load balancer without sticky sessions, run every replica with --mcp-stateless true (docs/scaling.md)",
			"database", displayDatabase(cfg.Database, cfg.Data))
	}
	createFirstUser, err := s.planFirstUser(ctx, getenv)
	if err != nil {
		return nil, err
	}
	s.firstUser = newFirstUser(createFirstUser, logger)
	secret, err := s.store.Secret(ctx, "token-hmac", 32)
	if err != nil {
		return nil, err
	}
	issuerPath := issuerPath(cfg.Issuer)
	renderer, err := web.New(web.WithBasePath(issuerPath))
	if err != nil {
		return nil, err
	}
	s.metrics = newMetrics()
	s.metrics.watchWrites(func() bool { return writeHealth(context.Background(), s.store).Writable })
	proofs, err := s.newDPoP(ctx)
	if err != nil {
		return nil, err
	}
	idps, tokenVault, err := s.identityProviders(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	var userTokens *wire.UserTokens
	if tokenVault != nil {
		userTokens = &wire.UserTokens{V: tokenVault}
	}
	az, err := authz.New(authz.Config{
		Issuer:                    cfg.Issuer,
		Storage:                   firstUserStorage{Storage: wire.NewAuthzStorage(s.store), first: s.firstUser},
		Renderer:                  renderer,
		Logger:                    logger.With("component", "authz"),
		GlobalSecret:              secret,
		Scopes:                    scopeDescriptions,
		AccessTokenLifespan:       cfg.AccessTokenTTL,
		RefreshTokenLifespan:      cfg.RefreshTokenTTL,
		RefreshTokenMaxLifespan:   cfg.RefreshTokenMaxTTL,
		AuthorizeCodeLifespan:     cfg.AuthCodeTTL,
		RefreshGrace:              cfg.RefreshGrace,
		ConsentLifetime:           cfg.ConsentTTL,
		SessionIdleTimeout:        cfg.SessionIdle,
		SessionMaxAge:             cfg.SessionMaxAge,
		DisablePasswordLogin:      !cfg.PasswordLogin,
		CORSOrigins:               cfg.CORSOrigins,
		TrustedProxies:            cfg.TrustedProxies,
		ClientMetadataDocuments:   cfg.ClientMetadataDocuments,
		AllowPrivateMetadataHosts: cfg.AllowPrivateMetadataHosts,
		RegistrationsPerMinute:    cfg.RegistrationsPerMinute,
		RegistrationsPerMinuteAll: cfg.RegistrationsPerMinuteAll,
		MaxClients:                cfg.MaxClients,
		Observer:                  s.metrics,
		DPoP:                      proofs,
		RequireDPoP:               cfg.RequireDPoP,
		IdentityProviders:         idps,
		Identities:                wire.NewAuthzStorage(s.store),
		UpstreamTokens:            upstreamTokenSaver(userTokens),
		IdentityProviderTimeout:   3 * cfg.IDPTimeout, // a step makes up to three calls
	})
	if err != nil {
		return nil, usageError(err.Error())
	}
	ms, err := mcp.New(mcp.Config{
		Issuer:             cfg.Issuer,
		Verifier:           wire.MCPVerifier(az.Verify),
		Notes:              wire.NewNotesStore(s.store),
		Upstreams:          cfg.Upstreams,
		UserTokens:         mcpUserTokens(userTokens),
		AllowedOrigins:     cfg.AllowedOrigins,
		AllowedHosts:       cfg.AllowedHosts,
		Stateless:          cfg.MCPStateless,
		JSONResponse:       cfg.MCPJSONResponse,
		Logger:             logger.With("component", "mcp"),
		DPoP:               wire.ProofChecker{Checker: proofs},
		RequireDPoP:        cfg.RequireDPoP,
		MaxBodyBytes:       int64(cfg.MaxRequestBytes),
		MaxSessionsPerUser: cfg.MCPMaxSessionsPerUser,
		MaxStreamsPerUser:  cfg.MCPMaxStreamsPerUser,
	})
	if err != nil {
		return nil, usageError(err.Error())
	}
	r := mux.NewRouter()
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	az.Register(r)
	ms.Register(r)
	r.Use(s.metrics.instrument)
	s.streams = newEventStreams()
	limits := requestLimits{BodyTimeout: cfg.ReadBodyTimeout, WriteTimeout: cfg.WriteTimeout, MaxBodyBytes: int64(cfg.MaxRequestBytes)}
	handler := accessLog(logger.With("component", "http"), limits.middleware(s.streams.middleware(acceptIssuerPath(r, issuerPath))))
	s.conns = newConnLimits(cfg.MaxConnections, cfg.MaxConnectionsPerAddress, cfg.TrustedProxies, logger.With("component", "http"))
	s.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if s.adminLn, s.adminSock, err = listenAdmin(cfg.Data); err != nil {
		return nil, err
	}
	s.adminSrv = &http.Server{Handler: s.firstUser.gate(adminHandler(localAdmin{s: s.store}, logger.With("component", "admin"))), ReadHeaderTimeout: 10 * time.Second}
	if cfg.MetricsListen != "" {
		if s.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("listen %s (metrics): %w", cfg.MetricsListen, err)
		}
		s.metricsSrv = &http.Server{Handler: s.metrics.handler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return s, nil
}

// healthz answers 200 while the store answers reads: tokens verify and
// notes read even when writes fail. When the disk takes no writes it says
// so in the body and in X-Mcpd-Writes, still with 200: restarting or
// draining the only instance would stop the reads too and free no space.
// GET /healthz?writes=1 answers 503 then, for a balancer or monitor that
// should act on failing writes.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	if err := s.store.Ping(ctx); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	h := writeHealth(ctx, s.store)
	if h.Writable {
		w.Header().Set("X-Mcpd-Writes", "ok")
		w.Write([]byte("ok\n"))
		return
	}
	w.Header().Set("X-Mcpd-Writes", "failing")
	status := http.StatusOK
	if r.URL.Query().Get("writes") != "" {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "degraded: writes fail since %s: %s; token checks and reads go on, and writes resume by themselves once the disk or database takes them again\n",
		h.Since.UTC().Format(time.RFC3339), h.Reason)
}

// run serves until ctx ends, then shuts down gracefully: in-flight requests
// finish, the admin socket is removed, the database is closed. On a first
// start it creates the first user while it serves, and ends with an error
// when that fails; a shutdown waits for the user to be written.
func (s *server) run(ctx context.Context, banner interface{ Write([]byte) (int, error) }) error {
	errc := make(chan error, 3)
	go func() { errc <- s.httpSrv.Serve(s.conns.listener(s.ln)) }()
	go func() { errc <- s.adminSrv.Serve(s.adminLn) }()
	if s.metricsSrv != nil {
		go func() { errc <- s.metricsSrv.Serve(s.metricsLn) }()
	}
	s.firstUser.start(ctx)
	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	janitorDone := make(chan struct{})
	go func() {
		defer close(janitorDone)
		s.store.RunJanitor(janitorCtx, s.cfg.JanitorInterval)
	}()
	replayCtx, stopReplay := context.WithCancel(context.Background())
	replayDone := make(chan struct{})
	go func() {
		defer close(replayDone)
		if s.dpopReplay != nil {
			s.dpopReplay.Run(replayCtx) // writes what is left when stopped
		}
	}()
	writeBanner(banner, s.cfg, s.ln.Addr().String(), s.initialPassword)
	s.logger.Info("serving", "listen", s.ln.Addr().String(), "issuer", s.cfg.Issuer, "data", s.cfg.Data,
		"database", displayDatabase(s.cfg.Database, s.cfg.Data))

	var runErr error
	firstUserDone := s.firstUser.done
	for stop := false; !stop; {
		select {
		case <-ctx.Done():
			s.logger.Info("shutting down")
			stop = true
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				runErr = err
			}
			stop = true
		case <-firstUserDone:
			firstUserDone = nil
			if err := s.firstUser.err; err != nil {
				s.logger.Error("shutting down: the first user could not be created", "err", err)
				runErr = err
				stop = true
			}
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.streams.stop()
	if err := s.httpSrv.Shutdown(shutCtx); err != nil {
		s.logger.Warn("requests still running at shutdown timeout", "err", err)
	}
	s.adminSrv.Shutdown(shutCtx)
	if s.metricsSrv != nil {
		s.metricsSrv.Shutdown(shutCtx)
	}
	stopJanitor()
	<-janitorDone
	// After the HTTP server: no request spends a jti any more.
	stopReplay()
	<-replayDone
	<-s.firstUser.done
	if err := s.firstUser.err; err != nil && runErr == nil {
		runErr = err
	}
	if err := s.closeAll(); err != nil && runErr == nil {
		runErr = err
	}
	s.logger.Info("stopped")
	return runErr
}

// closeAll releases whatever newServer acquired.
func (s *server) closeAll() error {
	for _, l := range []net.Listener{s.ln, s.adminLn, s.metricsLn} {
		if l != nil {
			l.Close()
		}
	}
	if s.adminSock != "" {
		os.Remove(s.adminSock)
		s.adminSock = ""
	}
	if s.store != nil {
		err := s.store.Close()
		s.store = nil
		return err
	}
	return nil
}
