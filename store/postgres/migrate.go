package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file of migrations/: NNNN_what.sql moves
// the schema from version NNNN-1 to NNNN. Append only; never edit a
// released file.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("postgres: migration file %q is not NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migrations must be numbered 1, 2, 3…; found %s at position %d", m.name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// Advisory lock ids of the store's own work, apart from LockKey's, which
// hashes its keys (lockID).
const (
	lockMigrate int64 = 0x6d637064_00000001 // "mcpd" 1
	lockJanitor int64 = 0x6d637064_00000002 // "mcpd" 2
)

// migrate brings the schema to SchemaVersion in one transaction that holds
// an advisory lock: replicas starting at once take turns, and the ones
// after the first find nothing to do. It refuses a schema written by a
// newer build. The version table records every step applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
			return fmt.Errorf("postgres: migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS mcpd_schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM mcpd_schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if current > len(ms) {
			return fmt.Errorf("postgres: database schema version %d is newer than this mcpd understands (%d)", current, len(ms))
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("postgres: migrate schema %d → %d (%s): %w", m.version-1, m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO mcpd_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("postgres: migrate: %w", err)
			}
			s.log.Info("store: migrated schema", "from", m.version-1, "to", m.version, "name", m.name)
		}
		return nil
	})
}
