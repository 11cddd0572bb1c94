package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

// TestDoctorDatabase: `mcpd doctor --database URL` checks a PostgreSQL
// deployment's database as `doctor --data` checks a bbolt file: it passes
// on a database that takes writes, fails with exit 1 and says why on one
// that does not (a hot standby after a failover), never prints the
// password, and refuses --data with --database.
func TestDoctorDatabase(t *testing.T) {
	db, role := pgtest.Role(t, pgtest.URL(t))
	password := strings.TrimPrefix(strings.SplitN(strings.TrimPrefix(db, "postgres://"), "@", 2)[0], role+":")

	out, errOut, err := mcpd(t, "", "doctor", "--database", db)
	if err != nil {
		t.Fatalf("doctor --database on a writable database: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"checked on the server", "the database answers", "a write commits"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor --database output lacks %q:\n%s", want, out)
		}
	}

	var v checkView
	if err := json.Unmarshal([]byte(mustMcpd(t, "", "doctor", "--database", db, "--json")), &v); err != nil {
		t.Fatalf("doctor --database --json: %v", err)
	}
	if len(v.Checks) != 2 || !v.Checks[0].OK || !v.Checks[1].OK {
		t.Errorf("doctor --database --json checks: %+v; want two that pass", v.Checks)
	}

	pgtest.SetReadOnly(t, role, true)
	out, errOut, err = mcpd(t, "", "doctor", "--database", db)
	if err == nil || exitCode(err) != 1 {
		t.Errorf("doctor --database on a read-only database: %v (exit %d); want exit 1\n%s", err, exitCode(err), out)
	}
	if !strings.Contains(out, "read-only") && !strings.Contains(out, "read only") {
		t.Errorf("doctor --database on a read-only database does not say it is read-only:\n%s", out)
	}
	for _, s := range []string{out, errOut, err.Error()} {
		if strings.Contains(s, password) {
			t.Errorf("doctor printed the database password:\n%s", s)
		}
	}

	if _, _, err := mcpd(t, "", "doctor", "--database", db, "--data", t.TempDir()); err == nil || exitCode(err) != 2 {
		t.Errorf("doctor --database --data: %v (exit %d); want a usage error (exit 2)", err, exitCode(err))
	}
}
