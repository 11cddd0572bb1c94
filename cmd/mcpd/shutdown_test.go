package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/mcpd once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

func mcpdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpd-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "mcpd")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, ".")
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

func TestSIGTERMDuringLoad(t *testing.T) {
	bin := mcpdBinary(t)
	data := t.TempDir()
	listen := freeAddr(t)
	issuer := "http://" + listen
	var stderr syncBuffer
	cmd := exec.Command(bin, "serve", "--listen", listen, "--data", data, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=admin-pw")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "is listening on") })

	clientID, redirect := publicClient(t, issuer, "load client")
	tok := login(t, issuer, clientID, redirect, "admin", "admin-pw", "notes:read")

	var ok, failed, refused atomic.Int64
	var failures sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, issuer+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
				resp, err := hc.Do(req)
				if err != nil {
					// Refused, or reset/closed while still in the kernel's
					// accept queue when the listener closed (the client
					// sees ECONNRESET or EOF on a fresh connection): it
					// was never accepted, so never in flight.
					var op *net.OpError
					if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || (errors.As(err, &op) && op.Op == "dial") {
						refused.Add(1)
						time.Sleep(5 * time.Millisecond)
						continue
					}
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				var body bytes.Buffer
				body.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					failures.Store(resp.Status, true)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("mcpd exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mcpd did not exit after SIGTERM")
	}
	close(stop)
	wg.Wait()
	if ok.Load() < 20 {
		t.Errorf("only %d requests succeeded before the signal; the load did not run", ok.Load())
	}
	if n := failed.Load(); n > 0 {
		var reasons []string
		failures.Range(func(k, _ any) bool { reasons = append(reasons, k.(string)); return true })
		t.Errorf("%d requests failed mid-flight (%d ok, %d refused after close): %v", n, ok.Load(), refused.Load(), reasons)
	}
	if _, err := os.Stat(filepath.Join(data, adminSocketName)); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind (stat: %v)", err)
	}
	checkBolt(t, filepath.Join(data, "mcpd.db"))
	t.Logf("%d requests ok, %d refused after the listener closed", ok.Load(), refused.Load())
}
