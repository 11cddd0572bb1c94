package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestUnavailableReason(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"disk_full (53100)", &pgconn.PgError{Code: "53100"}, true},
		{"out_of_memory (53200)", &pgconn.PgError{Code: "53200"}, true},
		{"too_many_connections (53300)", &pgconn.PgError{Code: "53300"}, true},
		{"read_only_sql_transaction (25006): a hot standby", &pgconn.PgError{Code: "25006"}, true},
		{"admin_shutdown (57P01): a restart ends the session", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot_connect_now (57P03): starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection_failure (08006)", &pgconn.PgError{Code: "08006"}, true},
		{"wrapped in the store's own words", fmt.Errorf("postgres: commit: %w", &pgconn.PgError{Code: "53100"}), true},
		{"a connection that could not be made", &pgconn.ConnectError{}, true},
		{"a refused connection", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"a connection the server closed", io.ErrUnexpectedEOF, true},
		{"a connection the driver closed", pgconn.ErrConnClosed, true},
		{"unique_violation (23505) is the caller's", &pgconn.PgError{Code: "23505"}, false},
		{"serialization_failure (40001) is not the database away", &pgconn.PgError{Code: "40001"}, false},
		{"undefined_table (42P01) is a bug", &pgconn.PgError{Code: "42P01"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"the caller hung up", context.Canceled, false},
		{"the caller's deadline", fmt.Errorf("timeout: %w", context.DeadlineExceeded), false},
		{"nil", nil, false},
		{"any other error", errors.New("boom"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := unavailableReason(c.err) != ""; got != c.want {
				t.Errorf("unavailableReason(%v) = %q; want unavailable %v", c.err, unavailableReason(c.err), c.want)
			}
		})
	}
}
