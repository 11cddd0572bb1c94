package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// cmdChaos is the crash campaign of docs/reliability.md: it runs a real
// `mcpd serve` under mixed load (authorization code flows, refresh
// rotations, client_credentials, MCP tool calls, note writes,
// revocations), SIGKILLs it at a random instant, checks the file with
// bbolt's consistency check, restarts it, and checks that every write it
// acknowledged is there and nothing it revoked is alive again; -kills
// times. Its last line is "N passed, M failed" over the kills.
func cmdChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin/mcpd", "mcpd binary")
	kills := fs.Int("kills", 100, "SIGKILLs")
	dir := fs.String("dir", "", "data directory parent (default a temporary one, removed at the end)")
	seed := fs.Uint64("seed", 0, "random seed (0: from the clock); printed, so the kill instants can be had again (the load interleaves as it will)")
	minUp := fs.Duration("min-up", 200*time.Millisecond, "shortest time under load before a kill")
	maxUp := fs.Duration("max-up", 2500*time.Millisecond, "longest time under load before a kill")
	maxTime := fs.Duration("max-time", 10*time.Minute, "stop the campaign (as failed) after this long")
	sample := fs.Int("sample", 200, "older acknowledged writes re-checked after each restart, besides every new one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kills < 1 || *kills > 10000 || *minUp <= 0 || *maxUp < *minUp || *maxTime <= 0 {
		return errors.New("want 1 ≤ -kills ≤ 10000 and 0 < -min-up ≤ -max-up")
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(*seed, 0x6d637064))
	parent := *dir
	if parent == "" {
		var err error
		if parent, err = os.MkdirTemp("", "mcpd-chaos-"); err != nil {
			return err
		}
		defer os.RemoveAll(parent)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	c := &campaign{
		bin: *bin, data: filepath.Join(parent, "data"), addr: addr, out: stdout,
		logPath: filepath.Join(parent, "serve.log"), password: "chaos-" + randomString(9),
	}
	fmt.Fprintf(stdout, "chaos: %d kills of %s serve on %s, seed %d, %s–%s under load each\n", *kills, *bin, addr, *seed, *minUp, *maxUp)
	start := time.Now()
	if err := c.start(ctx); err != nil {
		return err
	}
	defer c.stop()
	l, err := newChaosLoad(ctx, c.target(), c.password, rng.Uint64())
	if err != nil {
		return fmt.Errorf("preparing the load: %w", err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := l.run(loadCtx)
	defer func() { stopLoad(); <-loadDone }()

	passed, failed := 0, 0
	for k := 1; k <= *kills; k++ {
		if time.Since(start) > *maxTime {
			fmt.Fprintf(stdout, "stopping: the campaign passed -max-time %s after %d kills\n", *maxTime, k-1)
			failed += *kills - k + 1
			break
		}
		up := *minUp + time.Duration(rng.Int64N(int64(*maxUp-*minUp)+1))
		select {
		case <-time.After(up):
		case <-ctx.Done():
			return ctx.Err()
		}
		t0 := time.Now()
		c.kill()
		l.pause()
		problems := c.checkFile()
		startErr := c.start(ctx)
		var report checkReport
		if startErr == nil {
			report = l.ledger.verify(ctx, l, *sample, rng)
			problems = append(problems, report.problems...)
		} else {
			problems = append(problems, "restart: "+startErr.Error())
		}
		problems = append(problems, l.ledger.takeViolations()...)
		status := "ok"
		if len(problems) > 0 {
			status = "FAIL"
			failed++
		} else {
			passed++
		}
		fmt.Fprintf(stdout, "kill %d/%d after %s up: %s; %s; restart and checks %s\n", k, *kills, up.Round(time.Millisecond), status, report.summary(), time.Since(t0).Round(time.Millisecond))
		for i, p := range problems {
			if i == 10 {
				fmt.Fprintf(stdout, "  … and %d more\n", len(problems)-10)
				break
			}
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		if startErr != nil {
			fmt.Fprintf(stdout, "stopping: the server does not start again (log: %s)\n", c.logPath)
			failed += *kills - k
			break
		}
		l.resume()
	}
	stopLoad()
	<-loadDone
	if failed == 0 {
		// A last full pass over everything acknowledged in the campaign.
		l.pause()
		final := l.ledger.verifyAll(ctx, l)
		fmt.Fprintf(stdout, "final check of every acknowledged write: %s\n", final.summary())
		for _, p := range final.problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		if len(final.problems) > 0 {
			failed++
			passed--
		}
	}
	fmt.Fprintf(stdout, "acknowledged: %s; 5xx answers under load: %d; elapsed %s\n", l.ledger.totals(), l.serverErrors.Load(), time.Since(start).Round(time.Second))
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d kills failed", failed, passed+failed)
	}
	return nil
}

// campaign is the server under test: one data directory, one address
// (tokens are bound to the issuer, which follows the address), restarted
// after every kill.
type campaign struct {
	bin, data, addr, logPath, password string
	out                                io.Writer
	args                               []string // serve flags; nil: the campaign's own

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (c *campaign) target() string { return "http://" + c.addr }

// start runs mcpd serve and waits until /healthz answers 200. The caps on
// registrations are lifted: the load registers a client per grant.
func (c *campaign) start(ctx context.Context) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		args := []string{"serve", "--listen", c.addr, "--data", c.data, "--log-level", "warn", "--log-format", "json"}
		if c.args != nil {
			args = append(args, c.args...)
		} else {
			args = append(args, "--registrations-per-minute", "1000000", "--registrations-per-minute-total", "0", "--max-clients", "1000000",
				"--janitor-interval", "2s")
		}
		cmd := exec.Command(c.bin, args...)
		cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD="+c.password)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		c.mu.Lock()
		c.cmd, c.exited = cmd, exited
		c.mu.Unlock()
		err := waitHealthy(ctx, c.target(), exited, deadline)
		if err == nil {
			return nil
		}
		// The port may still be held for a moment by the killed process's
		// sockets; a start that exits at once is retried until the deadline.
		select {
		case <-exited:
			if time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		default:
			c.kill()
		}
		return fmt.Errorf("%w after %d attempts (log: %s)", err, attempt+1, c.logPath)
	}
}

func waitHealthy(ctx context.Context, target string, exited <-chan struct{}, deadline time.Time) error {
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("mcpd serve exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := hc.Get(target + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("no healthy /healthz")
}

// pid is the server's process id, 0 when none runs.
func (c *campaign) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// alive reports whether the server process is still running.
func (c *campaign) alive() bool {
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the server and waits until it is gone.
func (c *campaign) kill() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the server at the end of the campaign, gracefully.
func (c *campaign) stop() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// checkFile runs bbolt's consistency check over the database of the
// stopped server.
func (c *campaign) checkFile() []string {
	db, err := bolt.Open(filepath.Join(c.data, "mcpd.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return []string{"bbolt open: " + err.Error()}
	}
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, "bbolt check: "+err.Error())
		}
		return nil
	})
	if err != nil {
		problems = append(problems, "bbolt check: "+err.Error())
	}
	return problems
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port is free now.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// redact names a secret in a report by a hash of it, never the secret.
func redact(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "#" + hex.EncodeToString(sum[:4])
}
