// Command mcpd is a self-contained MCP server with its own OAuth 2.1
// authorization server. `mcpd help` lists its subcommands.
//
// This package is the program and the only place that knows every
// concrete type: it reads the settings (flags, environment, config file:
// config.go, idp.go, database.go), opens the store (bbolt in DATA/mcpd.db
// or PostgreSQL), builds authz, mcp, the DPoP checker, the identity
// provider connectors and the vault, and wires them together through
// internal/wire (serve.go). It owns what sits around the handlers: the
// listener and its limits (limits.go), issuer-path proxying
// (issuerpath.go), metrics, logging, the first user, the admin socket
// (adminsock.go) and the admin commands that use it or open the database
// themselves with the same output (admin.go, cmd_admin.go), doctor, compact,
// backup, migrate-to-postgres and healthcheck.
//
// It holds no protocol rule of its own: what a token, a page or an MCP
// request must be is decided in authz, mcp, dpop and web. run(ctx, args,
// stdin, stdout, stderr) is the whole program, so tests boot it in-process.
package main
