package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mcpd/mcpd/store"
)

// unavailableReason says why err means the database cannot take the
// request now but may later, or "": its disk is full, it is read-only (a
// hot standby, as after a failover, or default_transaction_read_only),
// it is out of some other resource, or it does not answer (stopped,
// restarting, the network down). A caller's own end (a canceled or
// expired context) is not the database's.
func unavailableReason(err error) string {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ""
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch code := pgErr.Code; {
		case code == "53100":
			return "the database's disk is full"
		case code == "25006":
			return "the database is read-only (a standby, or default_transaction_read_only)"
		case len(code) == 5 && code[:2] == "53":
			return "the database is out of resources (SQLSTATE " + code + ")"
		case code == "57P01", code == "57P02", code == "57P03", len(code) == 5 && code[:2] == "08":
			return notAnswering // shutting down, starting up, the connection lost
		}
		return ""
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return notAnswering
	}
	if _, ok := errors.AsType[net.Error](err); ok ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return notAnswering
	}
	return ""
}

// notAnswering is the reason of a database that is stopped, restarting or
// out of reach.
const notAnswering = "the database does not answer"

// healthLogInterval is how often failing writes are logged again.
const healthLogInterval = time.Minute

// healthProbeInterval is how long after a failure Health tries a write of
// its own, and how often while writes keep failing.
const healthProbeInterval = 5 * time.Second

// writeHealth follows whether the database takes writes, from the
// outcome of the store's statements and commits, as the bbolt store's
// follows its disk. A failure is logged at most once per
// healthLogInterval, however many requests fail, and again when its reason
// changes (a failover: the connections end, then the standby is
// read-only); the first success after failures is logged too, as rarely.
type writeHealth struct {
	mu       sync.Mutex
	failing  bool
	since    time.Time
	reason   string
	errorLog time.Time // last "writes fail" line
	logged   string    // the reason it gave
	okLog    time.Time // last "writes succeed again" line
	probed   time.Time // last failure or probe
}

// fail returns err marked store.ErrUnavailable when it means the database
// cannot take the request now (unavailableReason), noting and logging the
// failure; any other error comes back as it is.
func (s *Store) fail(err error) error {
	reason := unavailableReason(err)
	if reason == "" {
		return err
	}
	h := &s.health
	now := s.now()
	h.mu.Lock()
	if !h.failing {
		h.failing, h.since = true, now
	}
	h.reason, h.probed = reason, now
	logIt := h.errorLog.IsZero() || now.Sub(h.errorLog) >= healthLogInterval || reason != h.logged
	if logIt {
		h.errorLog, h.logged = now, reason
	}
	since := h.since
	h.mu.Unlock()
	if logIt {
		s.log.Error("store: writes fail: "+reason+"; token checks answered from the cache go on, and service resumes by itself once the database takes writes again",
			"since", since, "err", err)
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, reason, err)
}

// wrote notes that a write succeeded: the database takes writes.
func (s *Store) wrote() {
	h := &s.health
	h.mu.Lock()
	if !h.failing {
		h.mu.Unlock()
		return
	}
	now := s.now()
	h.failing = false
	logIt := h.okLog.IsZero() || now.Sub(h.okLog) >= healthLogInterval
	if logIt {
		h.okLog = now
	}
	since := h.since
	h.mu.Unlock()
	if logIt {
		s.log.Info("store: writes succeed again", "failed_for", now.Sub(since).Round(time.Second).String())
	}
}

// Health reports whether the database takes writes. While writes fail, it
// tries a write of its own every few seconds (it rewrites the one row of
// write_probe), so that it sees the database back even when nothing else
// writes. A full disk is seen from the writes that fail for it: a small
// write that finds room in a page may still succeed, so on a nearly full
// disk the answer may flip, as the bbolt store's does.
func (s *Store) Health(ctx context.Context) store.Health {
	h := &s.health
	h.mu.Lock()
	probe := h.failing && s.now().Sub(h.probed) >= healthProbeInterval
	if probe {
		h.probed = s.now()
	}
	h.mu.Unlock()
	if probe {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = s.ProbeWrite(pctx)
		cancel()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return store.Health{Writable: true}
	}
	return store.Health{Since: h.since, Reason: h.reason}
}

// ProbeWrite rewrites the one row of write_probe now, whatever Health
// last saw: nil when the database takes writes, else why not
// (store.ErrUnavailable when it cannot take them for now). `mcpd doctor
// --database` asks it.
func (s *Store) ProbeWrite(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "UPDATE write_probe SET probed_at = $1", s.now())
	if err != nil {
		return s.fail(err)
	}
	s.wrote()
	return nil
}

// checked is a querier whose errors say, by store.ErrUnavailable, when
// the database cannot take the request now (Store.fail). A statement of
// its own that succeeds on the pool is a write that worked, or a read;
// either way the database answers.
type checked struct {
	s *Store
	q querier
}

func (c checked) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := c.q.Exec(ctx, sql, args...)
	return tag, c.s.fail(err)
}

func (c checked) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return checkedRow{c.s, c.q.QueryRow(ctx, sql, args...)}
}

func (c checked) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := c.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, c.s.fail(err)
	}
	return checkedRows{Rows: rows, s: c.s}, nil
}

type checkedRow struct {
	s   *Store
	row pgx.Row
}

func (r checkedRow) Scan(dest ...any) error { return r.s.fail(r.row.Scan(dest...)) }

// checkedRows marks the error the rows end with (pgx.ForEachRow and
// pgx.CollectRows return it).
type checkedRows struct {
	pgx.Rows
	s *Store
}

func (r checkedRows) Err() error { return r.s.fail(r.Rows.Err()) }
