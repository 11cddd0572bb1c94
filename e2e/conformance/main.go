// Command conformance puts a bearer-adding reverse proxy in front of an MCP
// server, for the official MCP conformance suite: its server scenarios do
// not authorize themselves. It saves one note (so resources/list has a real
// note://{id}), prints the proxy's MCP URL on the first line of standard
// output and serves until interrupted.
//
// With -target URL and CONFORMANCE_TOKEN it fronts a real `mcpd serve` and
// a token that server issued. With -fixtures it first starts, in this
// process, the fixture server: mcpd's mcp package (mcp.New, the real /mcp
// handler with its Origin checks, bearer middleware, scope check and
// dispatcher) with the suite's fixtures registered through
// mcp.Config.Extension, notes in a bbolt store in a temporary directory,
// and a verifier that accepts one random token, the one the proxy adds.
//
// run.sh drives it; it is not part of mcpd.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	listen := flag.String("listen", "127.0.0.1:0", "address of the bearer-adding proxy")
	target := flag.String("target", "", "MCP URL of the running mcpd, e.g. http://127.0.0.1:8080/mcp")
	withFixtures := flag.Bool("fixtures", false, "serve the fixture server in this process instead of proxying to -target")
	flag.Parse()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	token := os.Getenv("CONFORMANCE_TOKEN")
	if *withFixtures {
		if *target != "" {
			return errors.New("-fixtures and -target exclude each other")
		}
		var stopFixtures func()
		var err error
		*target, token, stopFixtures, err = serveFixtures()
		if err != nil {
			return fmt.Errorf("fixture server: %w", err)
		}
		defer stopFixtures()
	}
	if *target == "" || token == "" {
		return errors.New("want -fixtures, or -target URL and CONFORMANCE_TOKEN in the environment")
	}

	if err := seedNote(ctx, *target, token); err != nil {
		return fmt.Errorf("seed a note: %w", err)
	}
	targetURL, err := url.Parse(*target)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: targetURL.Scheme, Host: targetURL.Host})
			// Keep the client's Host and Origin so mcpd's DNS-rebinding
			// checks see what the suite sent.
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1, // stream SSE as it comes
	}
	front := &http.Server{Handler: bufferBody(proxy), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- front.Serve(ln) }()
	fmt.Printf("http://%s%s\n", ln.Addr(), targetURL.Path)

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return front.Shutdown(shutdown)
}

// seedNote saves one note as the token's principal.
func seedNote(ctx context.Context, target, token string) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "conformance-seed", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   target,
		HTTPClient: &http.Client{Transport: bearer{token}, Timeout: 10 * time.Second},
	}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "note_save", Arguments: map[string]any{
		"title": "Welcome", "body": "A note for the conformance suite.", "tags": []string{"conformance"},
	}})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("note_save answered a tool error: %+v", res.Content)
	}
	return nil
}

// maxBody bounds a request body the proxy buffers.
const maxBody = 4 << 20

// bufferBody reads a request body whole before the proxy forwards it.
// Streamed, the transport reads the inbound body once more after sending
// it (to check its length) and that read can land after the proxy began
// the response, when net/http has closed the inbound body; the transport
// then drops the connection to mcpd and the client gets a truncated
// event stream (golang/go#40747). About 1 request in 300 was cut so.
func bufferBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// bearer adds the token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
