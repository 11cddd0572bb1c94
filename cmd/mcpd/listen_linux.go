package main

import (
	"syscall"
	"time"
)

// deferAccept makes the kernel hold back a new connection until its first
// bytes arrive, for at most d (TCP_DEFER_ACCEPT): a client that connects
// and sends nothing costs the server neither a goroutine nor buffers until
// then, and afterwards the header timeout applies as usual.
func deferAccept(d time.Duration) func(network, address string, c syscall.RawConn) error {
	secs := int(d / time.Second)
	if secs <= 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, secs)
		}); err != nil {
			return err
		}
		return serr
	}
}
