package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"
	"github.com/mcpd/mcpd/e2e/conformance/fixtures"
	"github.com/mcpd/mcpd/internal/wire"
	"github.com/mcpd/mcpd/mcp"
	"github.com/mcpd/mcpd/store"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// serveFixtures starts the fixture server on a free loopback port and
// returns its MCP URL, the one token it accepts, and stop, which shuts it
// down and removes its data.
func serveFixtures() (target, token string, stop func(), err error) {
	token = rand.Text()
	dir, err := os.MkdirTemp("", "mcpd-conformance-fixtures-")
	if err != nil {
		return "", "", nil, err
	}
	st, err := store.Open(dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, err
	}
	fx, err := fixtures.New()
	if err != nil {
		return "", "", nil, errors.Join(err, st.Close(), os.RemoveAll(dir))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, errors.Join(err, st.Close(), os.RemoveAll(dir))
	}
	issuer := "http://" + ln.Addr().String()
	srv, err := mcp.New(mcp.Config{
		Issuer:    issuer,
		Verifier:  oneToken(token),
		Notes:     wire.NewNotesStore(st),
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Extension: fx.Extension(),
	})
	if err != nil {
		return "", "", nil, errors.Join(err, ln.Close(), st.Close(), os.RemoveAll(dir))
	}
	r := mux.NewRouter()
	srv.Register(r)
	hs := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "conformance: fixture server:", err)
		}
	}()
	stop = func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := errors.Join(hs.Shutdown(shutdown), st.Close(), os.RemoveAll(dir)); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: stopping the fixture server:", err)
		}
	}
	return issuer + mcp.Path, token, stop, nil
}

// oneToken is a verifier that accepts exactly token, as a client with
// every scope.
func oneToken(token string) auth.TokenVerifier {
	return func(_ context.Context, got string, _ *http.Request) (*auth.TokenInfo, error) {
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return nil, fmt.Errorf("not the fixture server's token: %w", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{
			UserID:     "client:conformance",
			Scopes:     mcp.Scopes(),
			Expiration: time.Now().Add(24 * time.Hour),
			Extra:      map[string]any{"client_id": "conformance"},
		}, nil
	}
}
