package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// procStatusKB reads one "kB" field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusKB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which may hold spaces): f[0] is field 3 (state), f[1] field 4 (ppid),
// f[11] to f[14] fields 14 to 17 (utime, stime, cutime, cstime, in clock
// ticks of 1/100 s).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 15 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

// statTicks sums fields idx of a procStat answer, as CPU time.
func statTicks(f []string, idx ...int) (time.Duration, error) {
	var n int64
	for _, i := range idx {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad /proc stat field %d: %q", i, f[i])
		}
		n += v
	}
	return time.Duration(n) * 10 * time.Millisecond, nil
}

// procCPU is the user+system CPU time of a process so far.
func procCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return statTicks(f, 11, 12)
}

// procTreeCPU is the CPU time of pid, of its live children, and of the
// children it has waited for (a PostgreSQL postmaster and its backends,
// those that exited included).
func procTreeCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	total, err := statTicks(f, 11, 12, 13, 14) // utime, stime, cutime, cstime
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		cf, err := procStat(child)
		if err != nil || cf[1] != strconv.Itoa(pid) { // field 4: ppid
			continue
		}
		if t, err := statTicks(cf, 11, 12); err == nil {
			total += t
		}
	}
	return total, nil
}

// cmdColdStart execs `BIN serve` and measures exec to the first 200 from
// /healthz, polling every 2 ms: -first times on a fresh data directory each
// (the start that creates the database and the first user), then -n
// restarts on the first of those directories. For a first start it also
// measures exec to the first user being usable: a `user-list` call on the
// admin socket that returns a user (serve answers it only once the first
// user exists).
func cmdColdStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coldstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "/tmp/mcpd", "mcpd binary")
	n := fs.Int("n", 7, "restarts to time")
	firsts := fs.Int("first", 7, "first starts to time, each on a fresh data directory")
	dir := fs.String("dir", "", "parent of the data directories (default a temporary one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 50 || *firsts < 1 || *firsts > 50 {
		return errors.New("want 1 ≤ -n ≤ 50 and 1 ≤ -first ≤ 50")
	}
	parent := *dir
	if parent == "" {
		var err error
		if parent, err = os.MkdirTemp("", "loadgen-cold-"); err != nil {
			return err
		}
		defer os.RemoveAll(parent)
	}
	// once starts serve on data and returns exec → healthy /healthz and,
	// when withUser, exec → a user listed on the admin socket.
	once := func(data string, withUser bool) (healthy, user time.Duration, err error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.CommandContext(ctx, *bin, "serve", "--listen", addr, "--data", data, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=loadgen-cold")
		hc := &http.Client{Timeout: time.Second}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
		for healthy == 0 {
			if time.Since(t0) > 10*time.Second {
				return 0, 0, errors.New("no healthy /healthz within 10s")
			}
			resp, err := hc.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					healthy = time.Since(t0)
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		if !withUser {
			return healthy, 0, nil
		}
		sock := filepath.Join(data, "admin.sock")
		ac := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
		for user == 0 {
			if time.Since(t0) > 10*time.Second {
				return 0, 0, errors.New("no user on the admin socket within 10s")
			}
			resp, err := ac.Post("http://mcpd/admin/user-list", "application/json", strings.NewReader("{}"))
			if err == nil {
				var users []map[string]any
				derr := json.NewDecoder(resp.Body).Decode(&users)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && derr == nil && len(users) > 0 {
					user = time.Since(t0)
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		return healthy, user, nil
	}
	var first, firstUser, restarts []time.Duration
	for i := range *firsts {
		h, u, err := once(filepath.Join(parent, fmt.Sprintf("data-%d", i)), true)
		if err != nil {
			return err
		}
		first = append(first, h)
		firstUser = append(firstUser, u)
	}
	for range *n {
		h, _, err := once(filepath.Join(parent, "data-0"), false)
		if err != nil {
			return err
		}
		restarts = append(restarts, h)
	}
	for _, d := range [][]time.Duration{first, firstUser, restarts} {
		slices.Sort(d)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	med := func(d []time.Duration) float64 { return ms(d[len(d)/2]) }
	out := map[string]any{
		"scenario": "coldstart", "load1": loadAverage(),
		"first_starts": len(first), "first_start_ms": med(first), "first_min_ms": ms(first[0]), "first_max_ms": ms(first[len(first)-1]),
		"first_user_ms": med(firstUser), "first_user_min_ms": ms(firstUser[0]), "first_user_max_ms": ms(firstUser[len(firstUser)-1]),
		"restarts": len(restarts), "restart_median_ms": med(restarts), "restart_min_ms": ms(restarts[0]), "restart_max_ms": ms(restarts[len(restarts)-1]),
	}
	return json.NewEncoder(stdout).Encode(out)
}

// cmdBolt measures raw bbolt durable commits per second: one small Put
// per Update from one goroutine, in a fresh file under -dir (use the disk
// the server's data directory is on).
func cmdBolt(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bolt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", os.TempDir(), "directory on the disk to measure")
	n := fs.Int("n", 2000, "commits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 100000 {
		return errors.New("want 1 ≤ -n ≤ 100000")
	}
	tmp, err := os.MkdirTemp(*dir, "loadgen-bolt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	db, err := bolt.Open(filepath.Join(tmp, "raw.db"), 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	bucket := []byte("b")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		return err
	}
	value := make([]byte, 400)
	t0 := time.Now()
	for i := range *n {
		err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(fmt.Appendf(nil, "k%08d", i), value) })
		if err != nil {
			return err
		}
	}
	el := time.Since(t0)
	return json.NewEncoder(stdout).Encode(map[string]any{
		"scenario": "bolt-commit", "commits": *n, "seconds": el.Seconds(), "rps": float64(*n) / el.Seconds(),
	})
}

// ratioFlag is one -ratio NAME=SCENARIO/LABEL:SCENARIO/LABEL of summarize.
type ratioFlag []string

func (r *ratioFlag) String() string     { return strings.Join(*r, ", ") }
func (r *ratioFlag) Set(v string) error { *r = append(*r, v); return nil }

// cmdSummarize reads result lines and prints, per scenario and label, the
// median of each figure over the runs, then each requested ratio of median
// request rates.
func cmdSummarize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ratios ratioFlag
	fs.Var(&ratios, "ratio", "NAME=SCENARIO/LABEL:SCENARIO/LABEL, the first median req/s over the second (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type key struct{ scenario, label string }
	var order []key
	groups := map[key][]map[string]any{}
	dec := json.NewDecoder(stdin)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		s, _ := m["scenario"].(string)
		l, _ := m["label"].(string)
		k := key{s, l}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	median := func(rows []map[string]any, f string) (float64, bool) {
		var v []float64
		for _, r := range rows {
			if x, ok := r[f].(float64); ok {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return 0, false
		}
		slices.Sort(v)
		return v[len(v)/2], true
	}
	fmt.Fprintf(stdout, "| scenario | label | runs | req/s | p50 ms | p99 ms | server CPU µs/req | errors | RSS idle MB | RSS max MB | RssAnon max MB | other |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range order {
		rows := groups[k]
		cell := func(f string, scale float64, prec int) string {
			if x, ok := median(rows, f); ok {
				return strconv.FormatFloat(x*scale, 'f', prec, 64)
			}
			return ""
		}
		var other []string
		for _, f := range []string{"first_start_ms", "first_user_ms", "restart_median_ms", "db_cpu_us_per_req", "load1"} {
			if c := cell(f, 1, 1); c != "" {
				other = append(other, f+"="+c)
			}
		}
		fmt.Fprintf(stdout, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.scenario, k.label, len(rows),
			cell("rps", 1, 0), cell("p50_ms", 1, 2), cell("p99_ms", 1, 2), cell("cpu_us_per_req", 1, 0), cell("errors", 1, 0),
			cell("rss_idle_kb", 1.0/1024, 1), cell("rss_max_kb", 1.0/1024, 1), cell("rss_anon_max_kb", 1.0/1024, 1), strings.Join(other, " "))
	}
	fmt.Fprintln(stdout)
	for _, r := range ratios {
		name, spec, ok1 := strings.Cut(r, "=")
		a, b, ok2 := strings.Cut(spec, ":")
		as, al, ok3 := strings.Cut(a, "/")
		bs, bl, ok4 := strings.Cut(b, "/")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return fmt.Errorf("bad -ratio %q", r)
		}
		x, okx := median(groups[key{as, al}], "rps")
		y, oky := median(groups[key{bs, bl}], "rps")
		if !okx || !oky || y == 0 {
			fmt.Fprintf(stdout, "%s: no data\n", name)
			continue
		}
		line := fmt.Sprintf("%s: req/s %.0f / %.0f = %.3f", name, x, y, x/y)
		cx, okcx := median(groups[key{as, al}], "cpu_us_per_req")
		cy, okcy := median(groups[key{bs, bl}], "cpu_us_per_req")
		if okcx && okcy && cx > 0 {
			line += fmt.Sprintf("; server CPU µs/req %.0f / %.0f = %.3f", cx, cy, cx/cy)
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// loadAverage is the first field of /proc/loadavg, 0 when unreadable.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}
