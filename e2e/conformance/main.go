// Command conformance serves mcpd's /mcp handler for the official MCP
// conformance suite: a fake token verifier and in-memory notes behind a
// loopback reverse proxy that adds a valid bearer token, since the suite's
// server scenarios do not authorize themselves. It prints the proxy's MCP
// URL on its first line of standard output and serves until interrupted.
//
// run.sh drives it; it is not part of mcpd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/mcpd/mcpd/mcp"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// token is the one bearer the proxy adds and the verifier accepts, as
// user.
const (
	token = "conformance-token"
	user  = "conformance"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	proxyAddr := flag.String("listen", "127.0.0.1:0", "address of the bearer-adding proxy")
	verbose := flag.Bool("v", false, "log requests to standard error")
	flag.Parse()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxyLn, err := net.Listen("tcp", *proxyAddr)
	if err != nil {
		return err
	}
	issuer := "http://" + backendLn.Addr().String()
	notes := newMemNotes()
	// One note, so resources-list sees a real note://{id} resource.
	if _, err := notes.SaveNote(ctx, user, mcp.Note{Title: "Welcome", Body: "A note for the conformance suite.", Tags: []string{"conformance"}}); err != nil {
		return err
	}
	srv, err := mcp.New(mcp.Config{
		Issuer:   issuer,
		Verifier: verify,
		Notes:    notes,
		Logger:   logger,
		// The suite reaches the server through the proxy's port.
		AllowedOrigins: []string{"http://" + proxyLn.Addr().String()},
	})
	if err != nil {
		return err
	}
	r := mux.NewRouter()
	srv.Register(r)

	backendURL, _ := url.Parse(issuer)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backendURL)
			// Keep the client's Host and Origin so the server's
			// DNS-rebinding checks see what the suite sent.
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1, // stream SSE as it comes
	}

	backend := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	front := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- backend.Serve(backendLn) }()
	go func() { errc <- front.Serve(proxyLn) }()
	fmt.Printf("http://%s/mcp\n", proxyLn.Addr())

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	front.Shutdown(shutdown)
	backend.Shutdown(shutdown)
	return nil
}

// verify accepts only the proxy's token, as user with every scope.
func verify(_ context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
	if tok != token {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{
		UserID:     user,
		Scopes:     mcp.Scopes(),
		Expiration: time.Now().Add(time.Hour),
		Extra:      map[string]any{"client_id": "conformance"},
	}, nil
}
