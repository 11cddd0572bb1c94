//go:build !linux

package main

import (
	"syscall"
	"time"
)

// deferAccept is Linux's TCP_DEFER_ACCEPT; elsewhere connections are
// accepted at once and only the header timeout applies.
func deferAccept(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
