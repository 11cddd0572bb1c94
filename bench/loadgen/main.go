// Command loadgen measures mcpd over loopback: request rates and latencies
// of the MCP and OAuth hot paths, the server's memory, its cold start, and
// the raw bbolt commit rate of the disk underneath.
//
// Usage:
//
//	loadgen run -scenario whoami -target http://127.0.0.1:18080 -c 16 -d 10s
//	loadgen host -listen 127.0.0.1:0 -data DIR     (side-by-side handlers)
//	loadgen coldstart -bin /tmp/mcpd -first 7 -n 7  (first starts, then restarts)
//	loadgen bolt -dir DIR -n 2000
//	loadgen summarize < results.jsonl
//	loadgen chaos -bin bin/mcpd -kills 100          (crash campaign)
//	loadgen abuse -bin bin/mcpd -d 15s              (abuse scenarios)
//
// Every run prints one JSON line (a result) on stdout; summarize turns many
// of them into a table of medians. Only loopback targets are accepted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: loadgen run|host|coldstart|bolt|summarize|chaos|abuse [flags]
  run        drive one scenario against a target and print a JSON result
  host       serve the side-by-side handlers (plain, /noauth/mcp, /mcp)
  coldstart  exec mcpd serve repeatedly and time exec -> first 200 /healthz
             (-first N first starts on fresh directories, then -n restarts)
  bolt       raw bbolt durable commits per second in a directory
  summarize  read JSON results on stdin, print medians per scenario
  chaos      SIGKILL mcpd serve under mixed load, restart it, check that
             nothing acknowledged was lost (docs/reliability.md)
  abuse      slow, idle, oversized and hostile clients against mcpd serve;
             /healthz latency and memory while each runs`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "host":
		return cmdHost(ctx, args[1:], stderr)
	case "coldstart":
		return cmdColdStart(ctx, args[1:], stdout, stderr)
	case "bolt":
		return cmdBolt(ctx, args[1:], stdout, stderr)
	case "summarize":
		return cmdSummarize(args[1:], stdin, stdout, stderr)
	case "chaos":
		return cmdChaos(ctx, args[1:], stdout, stderr)
	case "abuse":
		return cmdAbuse(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
