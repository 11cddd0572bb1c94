package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// growthResult is one flood of `loadgen growth`: the load's result and
// what the database came to.
type growthResult struct {
	result
	Build  string `json:"build"`  // "this", or "base" for the -base binary
	Grants int    `json:"grants"` // one per worker
	// After the flood, the server still running.
	FileBytes int64 `json:"file_bytes"`
	LiveBytes int64 `json:"live_bytes"` // pages holding records
	DataBytes int64 `json:"data_bytes"` // keys and values
	// Where the server's resident memory was at the end of the flood, by
	// mapping (/proc/PID/smaps): its own binary, the database file, and
	// anonymous memory (the Go heap, stacks and runtime).
	RSSBinaryKB   int `json:"rss_binary_kb"`
	RSSDatabaseKB int `json:"rss_database_kb"`
	RSSAnonKB     int `json:"rss_anon_kb"`
	RSSOtherKB    int `json:"rss_other_kb"`
	// What `mcpd compact` made of the file: online, through the admin
	// socket (0 for a build without it), then offline.
	CompactedOnlineBytes  int64 `json:"compacted_online_bytes,omitempty"`
	CompactedOfflineBytes int64 `json:"compacted_offline_bytes,omitempty"`
}

// The goals of issue 17 for a refresh flood over 100 grants.
const (
	goalLiveBytes = 2e6
	goalFileBytes = 32e6
)

// cmdGrowth floods fresh servers with a token-writing scenario and reports
// how the database and the server's memory grew (docs/reliability.md,
// "Bounded growth").
func cmdGrowth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("growth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "mcpd binary under test")
	base := fs.String("base", "", "an earlier mcpd binary flooded first, for before and after (its file is read with -bin)")
	name := fs.String("scenario", "refresh", "refresh or client-credentials")
	workers := fs.Int("c", 100, "workers; for refresh, each holds one grant")
	dur := fs.Duration("d", 10*time.Minute, "flood duration")
	dir := fs.String("dir", "", "parent of the data directories (default a temporary one)")
	limits := fs.Bool("limits", false, "fail when this build misses a size goal of issue 17 (refresh: live data ≤ 2 MB, file ≤ 32 MB); RSS is reported, not judged, on a shared machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("growth: want -bin")
	}
	sc, ok := scenarios[*name]
	if !ok || (*name != "refresh" && *name != "client-credentials") {
		return fmt.Errorf("growth: scenario %q; want refresh or client-credentials", *name)
	}
	if *workers < 1 || *workers > 1024 || *dur <= 0 || *dur > 10*time.Minute {
		return errors.New("growth: want 1 ≤ -c ≤ 1024 and 0 < -d ≤ 10m")
	}
	parent := *dir
	if parent == "" {
		var err error
		if parent, err = os.MkdirTemp("", "loadgen-growth-"); err != nil {
			return err
		}
		defer os.RemoveAll(parent)
	}
	builds := []struct{ label, bin string }{{"this", *bin}}
	if *base != "" {
		builds = append([]struct{ label, bin string }{{"base", *base}}, builds...)
	}
	var last growthResult
	for _, b := range builds {
		res, err := floodOnce(ctx, b.label, b.bin, *bin, filepath.Join(parent, "data-"+b.label), *name, sc, *workers, *dur, stderr)
		if err != nil {
			return fmt.Errorf("growth %s: %w", b.label, err)
		}
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
		fmt.Fprintln(stderr, res.summary())
		last = *res
	}
	if *limits {
		var missed []string
		if *name == "refresh" && last.LiveBytes > goalLiveBytes {
			missed = append(missed, fmt.Sprintf("live data %d bytes > 2 MB", last.LiveBytes))
		}
		if *name == "refresh" && last.FileBytes > goalFileBytes {
			missed = append(missed, fmt.Sprintf("file %d bytes > 32 MB", last.FileBytes))
		}
		if len(missed) > 0 {
			return fmt.Errorf("growth: goals missed: %v", missed)
		}
	}
	return nil
}

func (r *growthResult) summary() string {
	s := fmt.Sprintf("%s: %s %.0fs over %d workers: %d requests (%.0f/s, %d errors); file %.1f MB, live data %.2f MB (%.2f MB of keys and values); RSS max %.1f MB (anonymous %.1f MB)",
		r.Build, r.Scenario, r.Seconds, r.Grants, r.Requests, r.RPS, r.Errors, float64(r.FileBytes)/1e6,
		float64(r.LiveBytes)/1e6, float64(r.DataBytes)/1e6, float64(r.RSSMaxKB)/1024, float64(r.RSSAnonMaxKB)/1024)
	s += fmt.Sprintf(" [at the end: binary %.1f MB, database %.1f MB, anonymous %.1f MB, other %.1f MB]",
		float64(r.RSSBinaryKB)/1024, float64(r.RSSDatabaseKB)/1024, float64(r.RSSAnonKB)/1024, float64(r.RSSOtherKB)/1024)
	if r.CompactedOnlineBytes > 0 {
		s += fmt.Sprintf("; compacted online %.2f MB, offline %.2f MB", float64(r.CompactedOnlineBytes)/1e6, float64(r.CompactedOfflineBytes)/1e6)
	}
	return s
}

// floodOnce runs the flood against a fresh `bin serve` on data and measures
// the file with tool (this build's mcpd).
func floodOnce(ctx context.Context, label, bin, tool, data, name string, sc scenario, workers int, dur time.Duration, stderr io.Writer) (*growthResult, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--data", data, "--log-level", "warn",
		"--registrations-per-minute", "1000000", "--max-clients", "1000000")
	// The total registration cap by environment: a release binary (-base)
	// has no such flag and ignores the variable.
	cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD="+os.Getenv("LOADGEN_PASSWORD"), "MCPD_REGISTRATIONS_PER_MINUTE_TOTAL=0")
	logf, err := os.Create(data + ".log") // the banner and warnings
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	defer stop()
	target := "http://" + addr
	if err := waitHealthy(ctx, target, nil, time.Now().Add(20*time.Second)); err != nil {
		return nil, err
	}
	env := &runEnv{
		target: target, mcpPath: "/mcp", user: "admin", password: os.Getenv("LOADGEN_PASSWORD"),
		hc: &http.Client{
			Transport:     &http.Transport{Proxy: nil, MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2},
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	env.browser = newAuthorizer(env)
	res, err := drive(ctx, env, sc, workers, 5*time.Second, dur, 1<<31-1, cmd.Process.Pid, 0)
	if err != nil {
		return nil, err
	}
	res.Scenario, res.Target = name, target
	g := &growthResult{result: *res, Build: label, Grants: workers}
	path := filepath.Join(data, "mcpd.db")
	if err := g.readSmaps(cmd.Process.Pid, bin, path); err != nil {
		return nil, err
	}
	if g.FileBytes, err = fileSize(path); err != nil {
		return nil, err
	}
	if label == "this" { // the build under test has doctor --data and compact online
		if err := g.readStats(ctx, tool, data); err != nil {
			return nil, err
		}
		if g.CompactedOnlineBytes, err = compactBytes(ctx, tool, data); err != nil {
			return nil, err
		}
	}
	stop()
	if label != "this" {
		if err := g.readStats(ctx, tool, data); err != nil {
			return nil, err
		}
		return g, nil
	}
	if g.CompactedOfflineBytes, err = compactBytes(ctx, tool, data); err != nil {
		return nil, err
	}
	return g, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// readStats reads the file's live data with `tool doctor --data`.
func (g *growthResult) readStats(ctx context.Context, tool, data string) error {
	out, err := mcpdJSON(ctx, tool, "doctor", "--data", data, "--json")
	if err != nil {
		return err
	}
	var v struct {
		Stats struct {
			LiveBytes int64 `json:"live_bytes"`
			DataBytes int64 `json:"data_bytes"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("doctor --data: %w", err)
	}
	g.LiveBytes, g.DataBytes = v.Stats.LiveBytes, v.Stats.DataBytes
	return nil
}

// compactBytes runs `tool compact` and returns the file's size after it.
func compactBytes(ctx context.Context, tool, data string) (int64, error) {
	out, err := mcpdJSON(ctx, tool, "compact", "--data", data, "--json")
	if err != nil {
		return 0, err
	}
	var v struct {
		After int64 `json:"after_bytes"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	return v.After, nil
}

func mcpdJSON(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("mcpd %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes(), nil
}

// readSmaps splits the resident memory of pid by mapping.
func (g *growthResult) readSmaps(pid int, bin, db string) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	binAbs, _ := filepath.Abs(bin)
	dbAbs, _ := filepath.Abs(db)
	var into *int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// a mapping's header: address perms offset dev inode [path]
			path := ""
			if len(fields) >= 6 {
				path = fields[5]
			}
			switch {
			case path == binAbs:
				into = &g.RSSBinaryKB
			case path == dbAbs:
				into = &g.RSSDatabaseKB
			case path == "" || path == "[heap]" || path == "[stack]":
				into = &g.RSSAnonKB
			default:
				into = &g.RSSOtherKB
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && into != nil {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return err
			}
			*into += kb
		}
	}
	return sc.Err()
}
