//go:build !linux

package pgtest

import "testing"

// SmallDisk needs Linux (a tmpfs); elsewhere the test is skipped.
func SmallDisk(t testing.TB, dbURL string, size, spare int, tables ...string) string {
	t.Helper()
	t.Skip("a full disk under PostgreSQL needs a tmpfs (Linux)")
	return ""
}
