package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	applyRuntimeDefaults(os.Args[1:], os.Getenv)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mcpd:", err)
		}
		os.Exit(exitCode(err))
	}
}

const mainUsage = `mcpd — an MCP server with its own OAuth 2.1 authorization server

Usage:
  mcpd serve [flags]                           run the server
  mcpd user add NAME --password-stdin          add a user
  mcpd user add NAME --email ADDR              add a user who signs in with an identity provider
  mcpd user email NAME ADDR                    set a user's email address
  mcpd user unlink NAME PROVIDER               forget a user's accounts at an identity provider
  mcpd user list [--json]                      list users
  mcpd user passwd NAME --password-stdin       change a password (signs the user out everywhere)
  mcpd user passkeys NAME [--remove ID]        list or remove a user's passkeys
  mcpd user remove NAME                        remove a user and end their grants
  mcpd client list [--json]                    list OAuth clients
  mcpd client show ID [--json]                 show one client
  mcpd client revoke ID                        end every grant and token of a client
  mcpd consent list [--user NAME] [--json]     list remembered consents
  mcpd consent revoke USER CLIENT_ID           forget a remembered consent
  mcpd backup FILE                             write a consistent copy of the database
  mcpd compact                                 give back the space old records left in the database
  mcpd migrate-to-postgres --database URL      copy DATA/mcpd.db into an empty PostgreSQL database
  mcpd doctor [--issuer URL]                   check the server the way a strict client would
  mcpd doctor --data DIR                       check the database file, offline
  mcpd doctor --database URL                   check a PostgreSQL database: schema, a write
  mcpd healthcheck                             exit 0 when the server answers /healthz
  mcpd version                                 print the version

Every admin subcommand takes --data DIR (env MCPD_DATA) and works with the
server running (through DATA/admin.sock) or stopped (opening DATA/mcpd.db).
With --database URL (env MCPD_DATABASE) it works on that PostgreSQL
database directly, with the replicas running or not.
Run "mcpd COMMAND --help" for the flags of one command.`

// run is the whole program; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, mainUsage)
		return usageError("no command given")
	}
	env := cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return env.serve(rest)
	case "user":
		return env.user(rest)
	case "client":
		return env.client(rest)
	case "consent":
		return env.consent(rest)
	case "backup":
		return env.backup(rest)
	case "migrate-to-postgres":
		return env.migrateToPostgres(rest)
	case "doctor":
		return env.doctor(rest)
	case "compact":
		return env.compact(rest)
	case "healthcheck":
		return env.healthcheck(rest)
	case "version", "--version":
		fmt.Fprintln(stdout, "mcpd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, mainUsage)
		return nil
	}
	fmt.Fprintln(stderr, mainUsage)
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

// cliEnv is what every subcommand reads and writes.
type cliEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// now is the clock by which upstream tokens expire (idp/vault); nil is
	// time.Now. Tests set it.
	now func() time.Time
}
