package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockID maps a LockKey key to an advisory lock id: the first 8 bytes of
// its SHA-256, in a space apart from the store's own lock ids only by the
// odds of a 64-bit collision.
func lockID(key string) int64 {
	h := sha256.Sum256([]byte("mcpd LockKey\x00" + key))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// LockKey waits until no other holder, in any process on the database,
// holds key, or ctx ends, and returns the function that gives it up
// (calling it again does nothing). The lock is a session advisory lock on
// a connection of a pool of its own: the holder's queries use the main
// pool, so holders never wait on each other for connections. A process
// that dies gives its locks up with its connections.
func (s *Store) LockKey(ctx context.Context, key string) (func(), error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock: %w", s.fail(err))
	}
	id := lockID(key)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		// The lock may have been granted as ctx ended: end the session,
		// which gives it up either way.
		closeConn(conn)
		return nil, fmt.Errorf("postgres: lock: %w", s.fail(err))
	}
	var once sync.Once
	return func() { once.Do(func() { unlockAndRelease(conn, id) }) }, nil
}

// unlockAndRelease gives up a session advisory lock and the connection
// that holds it; when the unlock fails the connection is closed, which
// gives up every lock of its session.
func unlockAndRelease(conn *pgxpool.Conn, id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var unlocked bool
	if err := conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", id).Scan(&unlocked); err != nil || !unlocked {
		closeConn(conn)
		return
	}
	conn.Release()
}

// closeConn takes a connection out of its pool and closes it, ending its
// session and so every advisory lock the session holds.
func closeConn(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Hijack().Close(ctx)
}

// tryLock takes the advisory lock id if nobody holds it, on a connection
// of the lock pool; ok is false when another session holds it.
func (s *Store) tryLock(ctx context.Context, id int64) (unlock func(), ok bool, err error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return nil, false, s.fail(err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ok); err != nil {
		closeConn(conn)
		return nil, false, s.fail(err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() { unlockAndRelease(conn, id) }, true, nil
}
