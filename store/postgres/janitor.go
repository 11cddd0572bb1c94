package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpd/mcpd/store"
)

// sweepBatch is the most rows one janitor statement deletes, so a sweep of
// a large backlog is many short statements that never hold many row locks
// for long.
const sweepBatch = 1000

// Sweep removes every expired code, token, PKCE session, JTI, consent,
// refresh successor, login session, pending authorization, WebAuthn
// ceremony and unfinished identity-provider sign-in, and dynamic clients that never completed an
// authorization within Options.UnactivatedClientTTL (with their grants and
// consents). Its Index count is always zero: the database keeps its own
// indexes.
func (s *Store) Sweep(ctx context.Context) (store.SweepStats, error) {
	now := s.now()
	var st store.SweepStats
	steps := []struct {
		n     *int
		query string
	}{
		{&st.Codes, "DELETE FROM tokens WHERE (kind, key) IN (SELECT kind, key FROM tokens WHERE kind = 'c' AND expires_at <= $1 LIMIT $2)"},
		{&st.Access, "DELETE FROM tokens WHERE (kind, key) IN (SELECT kind, key FROM tokens WHERE kind = 'a' AND expires_at <= $1 LIMIT $2)"},
		{&st.Refresh, "DELETE FROM tokens WHERE (kind, key) IN (SELECT kind, key FROM tokens WHERE kind = 'r' AND expires_at <= $1 LIMIT $2)"},
		{&st.PKCE, "DELETE FROM tokens WHERE (kind, key) IN (SELECT kind, key FROM tokens WHERE kind = 'p' AND expires_at <= $1 LIMIT $2)"},
		{&st.JTIs, "DELETE FROM jtis WHERE key IN (SELECT key FROM jtis WHERE expires_at <= $1 LIMIT $2)"},
		{&st.Successors, "DELETE FROM successors WHERE key IN (SELECT key FROM successors WHERE expires_at <= $1 LIMIT $2)"},
		{&st.Consents, "DELETE FROM consents WHERE (user_name, client_id) IN (SELECT user_name, client_id FROM consents WHERE expires_at <= $1 LIMIT $2)"},
		{&st.Sessions, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)"},
		{&st.Pending, "DELETE FROM pending_authorizations WHERE id IN (SELECT id FROM pending_authorizations WHERE expires_at <= $1 LIMIT $2)"},
		{&st.Ceremonies, "DELETE FROM webauthn_sessions WHERE id IN (SELECT id FROM webauthn_sessions WHERE expires_at <= $1 LIMIT $2)"},
		{&st.IDPStates, "DELETE FROM idp_states WHERE key IN (SELECT key FROM idp_states WHERE expires_at <= $1 LIMIT $2)"},
	}
	for _, step := range steps {
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			tag, err := s.pool.Exec(ctx, step.query, now, sweepBatch)
			if err != nil {
				return st, fmt.Errorf("sweep: %w", s.fail(err))
			}
			*step.n += int(tag.RowsAffected())
			if tag.RowsAffected() < sweepBatch {
				break
			}
		}
	}
	// Stale registrations go with their grants and consents.
	cutoff := now.Add(-s.clientTT)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var n int
		err := s.update(ctx, func(ctx context.Context) error {
			q, err := s.q(ctx)
			if err != nil {
				return err
			}
			rows, err := q.Query(ctx, `
				SELECT id FROM clients WHERE source = $1 AND activated_at IS NULL AND created_at < $2
				LIMIT $3 FOR UPDATE SKIP LOCKED`, store.SourceDynamic, cutoff, sweepBatch)
			if err != nil {
				return err
			}
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			n, err = s.deleteClients(ctx, ids)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("sweep: %w", err)
		}
		st.Clients += n
		if n < sweepBatch {
			break
		}
	}
	return st, nil
}

// RunJanitor calls Sweep every interval until ctx is done, logging what it
// removed (counts only) and any error. Of the processes on one database,
// one sweeps at a time: a round finds the janitor's advisory lock taken
// by another replica's sweep and skips.
func (s *Store) RunJanitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, swept, err := s.sweepOnce(ctx)
		switch {
		case err != nil:
			// An unavailable database is logged once a minute (fail).
			if ctx.Err() == nil && !errors.Is(err, store.ErrUnavailable) {
				s.log.Error("store: janitor sweep failed", "err", err)
			}
		case !swept:
			s.log.Debug("store: janitor skipped: another replica is sweeping")
		case st != (store.SweepStats{}):
			s.log.Info("store: janitor swept", st.LogAttrs()...)
		}
	}
}

// sweepOnce sweeps while holding the janitor's advisory lock, or reports
// swept false when another process holds it.
func (s *Store) sweepOnce(ctx context.Context) (st store.SweepStats, swept bool, err error) {
	unlock, ok, err := s.tryLock(ctx, lockJanitor)
	if err != nil || !ok {
		return st, false, err
	}
	defer unlock()
	st, err = s.Sweep(ctx)
	return st, true, err
}
