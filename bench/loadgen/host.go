package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/mcpd/mcpd/authz"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/web"
)

// cmdHost serves, in one process and behind one router, the handlers the
// MCP comparison needs side by side:
//
//	/mcp         mcp.New with authz.Server.Verify over bbolt (as mcpd serve)
//	/noauth/mcp  the same mcp.New with a verifier that accepts any bearer
//	/plain       a plain net/http handler answering a small JSON document
//
// plus the OAuth endpoints, so the whoami scenario gets its token the same
// way as against mcpd serve. There is no access log or metrics middleware
// here, so the only difference between /mcp and /noauth/mcp is the token
// check.
func cmdHost(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("host", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to serve on")
	data := fs.String("data", "", "data directory (required; a fresh one per run)")
	password := fs.String("password", os.Getenv("LOADGEN_PASSWORD"), "password of the user admin (env LOADGEN_PASSWORD)")
	stateless := fs.Bool("mcp-stateless", false, "mcp.Config.Stateless")
	jsonResp := fs.Bool("mcp-json-response", false, "mcp.Config.JSONResponse")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *password == "" {
		return errors.New("host: -data and -password are required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		return fmt.Errorf("host: %s is not a loopback address", ln.Addr())
	}
	issuer := "http://" + ln.Addr().String()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := store.Open(*data, &store.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	if n, err := st.CountUsers(ctx); err != nil {
		return err
	} else if n == 0 {
		if err := st.CreateUser(ctx, "admin", *password); err != nil {
			return err
		}
	}
	secret, err := st.Secret(ctx, "token-hmac", 32)
	if err != nil {
		return err
	}
	renderer, err := web.New()
	if err != nil {
		return err
	}
	az, err := authz.New(authz.Config{
		Issuer: issuer, Storage: wire.NewAuthzStorage(st), Renderer: renderer, Logger: logger,
		GlobalSecret: secret, Scopes: []authz.Scope{
			{Name: mcp.ScopeNotesRead, Description: "Read your notes"},
			{Name: mcp.ScopeNotesWrite, Description: "Change your notes"},
			{Name: mcp.ScopeAPICall, Description: "Call upstream APIs"},
		},
		AccessTokenLifespan: time.Hour, RefreshTokenLifespan: 24 * time.Hour, RefreshTokenMaxLifespan: 48 * time.Hour,
		AuthorizeCodeLifespan: time.Minute, RefreshGrace: time.Minute, ConsentLifetime: time.Hour,
		SessionIdleTimeout: time.Hour, RegistrationsPerMinute: 1000, MaxClients: 100000,
	})
	if err != nil {
		return err
	}
	mcpCfg := mcp.Config{Issuer: issuer, Notes: wire.NewNotesStore(st), Stateless: *stateless, JSONResponse: *jsonResp, Logger: logger}
	mcpCfg.Verifier = az.Verify
	authed, err := mcp.New(mcpCfg)
	if err != nil {
		return err
	}
	mcpCfg.Verifier = acceptAnyBearer
	open, err := mcp.New(mcpCfg)
	if err != nil {
		return err
	}

	r := mux.NewRouter()
	az.Register(r)
	authed.Register(r)
	r.Handle("/noauth"+mcp.Path, open.Handler()).Methods(http.MethodPost, http.MethodGet, http.MethodDelete)
	r.HandleFunc("/plain", plainHandler).Methods(http.MethodPost)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stderr, "loadgen host listening on %s (pid %d)\n", ln.Addr(), os.Getpid())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// acceptAnyBearer is the "authentication off" verifier: every bearer is a
// user with every scope, without a lookup.
func acceptAnyBearer(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
	return &auth.TokenInfo{
		UserID: "bench", Scopes: mcp.Scopes(), Expiration: time.Now().Add(time.Hour),
		Extra: map[string]any{"client_id": "bench"},
	}, nil
}

// plainHandler reads the request and answers a JSON-RPC result of the
// size whoami answers, with nothing behind it.
func plainHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"user\":\"bench\",\"client_id\":\"bench\",\"scopes\":[\"notes:read\"],\"expires_at\":\"2026-01-01T00:00:00Z\"}"}],"structuredContent":{"user":"bench","client_id":"bench","scopes":["notes:read"],"expires_at":"2026-01-01T00:00:00Z"}}}`))
}
