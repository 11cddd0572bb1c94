package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/mcpd/mcpd/store"
	"github.com/mcpd/mcpd/store/postgres"
)

// databaseUsage is the help text of --database, for serve and every admin
// command.
const databaseUsage = "PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DB) that holds everything, shared by replicas; empty: bbolt at DATA/mcpd.db"

// checkDatabaseURL accepts an empty value (bbolt) or a postgres:// or
// postgresql:// URL (its host may also come as a host= parameter, a Unix
// socket directory among others).
func checkDatabaseURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("want a postgres:// URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("want a postgres:// URL, not %s://", u.Scheme)
	}
	return nil
}

// displayDatabase shows where a database is without its password: the
// host, port and database name of a URL, or the bbolt file.
func displayDatabase(database, dataDir string) string {
	if database == "" {
		return filepath.Join(dataDir, store.FileName)
	}
	u, err := url.Parse(database)
	if err != nil {
		return "postgres"
	}
	return "postgres://" + u.Host + u.Path
}

// openBackend opens the store a command works on: PostgreSQL when database
// is set, the bbolt file in dataDir otherwise. cache turns PostgreSQL's
// token cache and its listener on (serve); the admin commands run without.
func openBackend(ctx context.Context, database, dataDir string, logger *slog.Logger, cache bool, check store.CheckMode) (store.Backend, error) {
	if database == "" {
		s, err := store.Open(dataDir, &store.Options{Logger: logger, Check: check})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := checkDatabaseURL(database); err != nil {
		return nil, usageError("invalid --database: " + err.Error())
	}
	s, err := postgres.Open(ctx, database, &postgres.Options{Logger: logger, NoTokenCache: !cache})
	if err != nil {
		return nil, err
	}
	return s, nil
}

const migrateUsage = `Usage: mcpd migrate-to-postgres --database URL [--data DIR]

Copies the bbolt database DATA/mcpd.db into the PostgreSQL database URL
(or MCPD_DATABASE): the server's keys, users with their password hashes,
emails, passkeys, linked identities and sealed upstream tokens, clients,
consents, notes, and the live grants (codes, access
and refresh tokens, refresh successors, client-assertion JTIs), so clients
keep working without logging in again. Nothing expired is copied, and no
browser session: people sign in again in the browser. The target must be
empty (a new database; serve has never run on it); a non-empty one is
refused and left as it is. The copy commits as a whole or not at all.

Stop mcpd serve first: the copy needs the bbolt file to itself. Then start
the replicas with --database URL.`

func (e cliEnv) migrateToPostgres(args []string) error {
	fs, f := e.adminFlagSet("migrate-to-postgres", migrateUsage, false, false)
	data, database := f.data, f.database
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("migrate-to-postgres takes no arguments")
	}
	if *database == "" {
		return usageError("migrate-to-postgres: --database (or MCPD_DATABASE) names the PostgreSQL database to copy into")
	}
	if err := checkDatabaseURL(*database); err != nil {
		return usageError("invalid --database: " + err.Error())
	}
	path := filepath.Join(*data, store.FileName)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("migrate-to-postgres: no bbolt database at %s: %w", path, err)
	}
	logger := slog.New(slog.DiscardHandler)
	src, err := store.Open(*data, &store.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("migrate-to-postgres: %w", err)
	}
	defer src.Close()
	dst, err := postgres.Open(e.ctx, *database, &postgres.Options{Logger: logger, NoTokenCache: true})
	if err != nil {
		return fmt.Errorf("migrate-to-postgres: %w", err)
	}
	defer dst.Close()
	var n store.ExportCounts
	err = dst.Import(e.ctx, func(ctx context.Context, sink store.Sink) error {
		var err error
		n, err = src.Export(ctx, sink)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate-to-postgres: %w", err)
	}
	fmt.Fprintf(e.stdout, "copied %s to %s: %d users, %d clients, %d consents, %d notes, %d passkeys, %d linked identities, %d upstream tokens, %d tokens and codes, %d refresh successors, %d JTIs, %d keys\n",
		path, displayDatabase(*database, ""), n.Users, n.Clients, n.Consents, n.Notes, n.Passkeys, n.Identities, n.UpstreamTokens, n.Tokens, n.Successors, n.JTIs, n.Secrets)
	fmt.Fprintln(e.stdout, "start the replicas with --database (or MCPD_DATABASE); keep the bbolt file until they serve.")
	return nil
}
