package main

import (
	"testing"
	"time"
)

func TestShutdownEndsOpenEventStreams(t *testing.T) {
	ts := startServer(t, "--shutdown-timeout", "60s")
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "stream client")
	tok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
	cs := connectMCP(t, ts.URL, tok.AccessToken) // keeps a GET event stream open
	whoami(t, cs)
	start := time.Now()
	ts.Stop(t)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("shutdown took %s with a client's event stream open; want it ended at once, not at --shutdown-timeout", d.Round(time.Millisecond))
	}
}
