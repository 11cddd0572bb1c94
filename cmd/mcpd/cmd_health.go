package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

func (e cliEnv) healthcheck(args []string) error {
	const usage = `Usage: mcpd healthcheck [--listen ADDR]

Exits 0 when the server listening on ADDR (env MCPD_LISTEN) answers
/healthz; used by the Docker HEALTHCHECK.`
	fs := newFlagSet("healthcheck", e.stderr, usage)
	def := e.getenv("MCPD_LISTEN")
	if def == "" {
		def = "127.0.0.1:8080"
	}
	listen := fs.String("listen", def, "address the server listens on (env MCPD_LISTEN)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("healthcheck takes no arguments")
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageError(fmt.Sprintf("invalid --listen %q: want host:port", *listen))
	}
	u := "http://" + net.JoinHostPort(loopbackFor(host), port) + "/healthz"
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", u, resp.Status)
	}
	fmt.Fprintln(e.stdout, "healthy")
	return nil
}
