// Command mcpd is a self-contained MCP server with its own OAuth 2.1
// authorization server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpd:", err)
		os.Exit(exitCode(err))
	}
}

// run is the whole program; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	_ = ctx
	_ = stdin
	_ = stderr
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, "mcpd", version)
		return nil
	}
	return usageError("usage: mcpd <serve|user|client|healthcheck|version> ...")
}
