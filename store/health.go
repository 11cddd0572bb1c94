package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable is what a write returns when the disk under the database
// will not take it (full, over quota, remounted read-only). The file stays
// whole: bbolt writes a commit's pages before the meta page that makes
// them the database, so a commit that cannot be written is as if it never
// happened. Reads, and so token checks, go on; writes succeed again as
// soon as space is freed, without a restart.
var ErrUnavailable = errors.New("storage temporarily unavailable")

// Health says whether the database takes writes.
type Health struct {
	Writable bool
	// Since and Reason describe why writes fail, when they do.
	Since  time.Time
	Reason string
}

// healthLogInterval is how often a failing disk is logged again.
const healthLogInterval = time.Minute

// healthProbeInterval is how often Health tries a write while writes fail.
const healthProbeInterval = 5 * time.Second

// probeMinFree is the free space below which Health does not bother to
// probe: a small write may still land in the file's free pages while the
// disk is full, and would make a full disk look writable.
const probeMinFree = 1 << 20

// writeHealth follows the outcome of commits. A commit that fails for want
// of disk is logged at most once per healthLogInterval, however many
// requests fail (small writes can still land in the file's free pages
// while larger ones fail, so the state may flip; the log does not); the
// first commit that succeeds after failures is logged too, as rarely.
type writeHealth struct {
	mu       sync.Mutex
	failing  bool
	since    time.Time
	reason   string
	errorLog time.Time // last "writes fail" line
	okLog    time.Time // last "writes succeed again" line
	probed   time.Time
}

// unavailableReason says why err means the disk takes no writes, or "".
func unavailableReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full"
	case errors.Is(err, syscall.EDQUOT):
		return "the disk quota is used up"
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only"
	}
	return ""
}

// commitOutcome is what the group commit hands the writers of a commit
// that ended with err: nil, an ErrUnavailable, or err itself.
func (s *Store) commitOutcome(err error) error {
	h := &s.health
	now := s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.failing {
			h.failing = false
			if h.okLog.IsZero() || now.Sub(h.okLog) >= healthLogInterval {
				s.log.Info("store: writes succeed again", "failed_for", now.Sub(h.since).Round(time.Second).String())
				h.okLog = now
			}
		}
		return nil
	}
	reason := unavailableReason(err)
	if reason == "" {
		return fmt.Errorf("commit: %w", err)
	}
	if !h.failing {
		h.failing, h.since = true, now
	}
	h.reason = reason
	if h.errorLog.IsZero() || now.Sub(h.errorLog) >= healthLogInterval {
		s.log.Error("store: writes fail: "+reason+"; reads and token checks go on, and writes resume once space is freed",
			"path", s.path, "since", h.since, "err", err)
		h.errorLog = now
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, reason, err)
}

// Health reports whether the database takes writes. While writes fail,
// and the disk has space again, it tries one small write every few
// seconds, so that it sees space freed even when nothing else writes.
func (s *Store) Health(ctx context.Context) Health {
	h := &s.health
	h.mu.Lock()
	probe := h.failing && s.now().Sub(h.probed) >= healthProbeInterval
	if probe {
		h.probed = s.now()
	}
	h.mu.Unlock()
	if probe {
		if free, ok := freeBytes(filepath.Dir(s.path)); ok && free < probeMinFree {
			probe = false
		}
	}
	if probe {
		now := s.now()
		_ = s.update(ctx, func(tx *wtx) error {
			return tx.bucket(bucketMeta).Put([]byte(keyWriteProbe), []byte(now.UTC().Format(time.RFC3339Nano)))
		})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return Health{Writable: true}
	}
	return Health{Since: h.since, Reason: h.reason}
}

// keyWriteProbe is the meta key Health writes to see whether writes work.
const keyWriteProbe = "write_probe"

// quietUnavailable drops the error of a write that failed for want of
// disk, which the store has already logged, and returns the others.
func quietUnavailable(log *slog.Logger, msg string, err error) {
	if !errors.Is(err, ErrUnavailable) {
		log.Error(msg, "err", err)
	}
}
