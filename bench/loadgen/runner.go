package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one run of one scenario, printed as a JSON line.
type result struct {
	Scenario  string  `json:"scenario"`
	Label     string  `json:"label,omitempty"`
	Target    string  `json:"target"`
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	RPS       float64 `json:"rps"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	RSSIdleKB int     `json:"rss_idle_kb,omitempty"`
	RSSMaxKB  int     `json:"rss_max_kb,omitempty"`
	HWMKB     int     `json:"hwm_kb,omitempty"`
	// CPUusPerReq is the server's user+system CPU time over the measured
	// window divided by the requests: robust where throughput is not, on
	// a machine shared with other work.
	CPUusPerReq float64 `json:"cpu_us_per_req,omitempty"`
	// DBCPUusPerReq is the CPU the database server (-db-pid and its
	// children) spent per measured request.
	DBCPUusPerReq float64 `json:"db_cpu_us_per_req,omitempty"`
	// RSSAnonMaxKB is the largest RssAnon sampled: the Go heap and stacks
	// without file pages (the binary, bbolt's memory map of the database).
	RSSAnonMaxKB int `json:"rss_anon_max_kb,omitempty"`
	// LiveProofs counts the DPoP proofs signed inside the run because a
	// worker's proofs signed ahead ran out (the *-dpop scenarios): the
	// client's signing then shared the cores with the server.
	LiveProofs int64   `json:"live_proofs,omitempty"`
	Load1      float64 `json:"load1"` // the machine's 1-minute load average at the end
	FirstError string  `json:"first_error,omitempty"`
}

// op is one request of a scenario, made by one worker.
type op func(ctx context.Context) error

// scenario prepares worker i (an MCP session, a grant…) outside the timed
// window and returns the request it repeats.
type scenario func(ctx context.Context, env *runEnv, i int) (op, error)

var scenarios = map[string]scenario{
	"plain":              plainScenario,
	"whoami":             whoamiScenario(true, false),
	"whoami-noauth":      whoamiScenario(false, false),
	"whoami-2026":        whoamiScenario(true, true),
	"whoami-2026-noauth": whoamiScenario(false, true),
	"refresh":            refreshScenario,
	"client-credentials": clientCredentialsScenario,
	"introspect":         introspectScenario,
	"register":           registerScenario,
	// DPoP (RFC 9449): the same with DPoP-bound tokens and a proof per
	// request, signed ahead (dpop.go).
	"whoami-dpop":             whoamiDPoPScenario,
	"client-credentials-dpop": clientCredentialsDPoPScenario,
	"refresh-dpop":            refreshDPoPScenario,
}

// runEnv is what scenarios share: the target, the HTTP client, settings,
// and state prepared once (a token, a confidential client).
type runEnv struct {
	target   string
	mcpPath  string
	user     string
	password string
	hc       *http.Client
	browser  *authorizer // one login, remembered consent

	once      sync.Once
	onceErr   error
	token     string // whoami: an access token from one authorization
	tokenType string // its token_type
	ccID      string // client-credentials / introspect: a confidential client
	ccSecret  string

	// The *-dpop scenarios: the client's key, how many proofs to sign
	// ahead (over all workers), and how many were signed live.
	dpop       *proofSigner
	dpopProofs int
	liveProofs atomic.Int64
	workers    int
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("scenario", "whoami", "plain, whoami, whoami-noauth, whoami-2026, whoami-2026-noauth, refresh, client-credentials, introspect, register, or whoami-dpop, refresh-dpop, client-credentials-dpop")
	dpopProofs := fs.Int("dpop-proofs", 60000, "DPoP proofs to sign ahead, over all workers (*-dpop scenarios; a proof is good for a minute)")
	target := fs.String("target", "http://127.0.0.1:18080", "base URL of the server (loopback only)")
	mcpPath := fs.String("mcp-path", "", "path of the MCP endpoint (default /mcp, /noauth/mcp for whoami-noauth)")
	workers := fs.Int("c", 16, "concurrent workers")
	dur := fs.Duration("d", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "unmeasured warm-up before the measured window")
	maxReq := fs.Int("n", 2_000_000, "stop after this many measured requests")
	user := fs.String("user", "admin", "user for the authorization code flow")
	password := fs.String("password", os.Getenv("LOADGEN_PASSWORD"), "that user's password (env LOADGEN_PASSWORD)")
	pid := fs.Int("pid", 0, "server process to sample VmRSS/VmHWM from (0: none)")
	dbPID := fs.Int("db-pid", 0, "database server (PostgreSQL's postmaster) whose CPU, with its children's, to count per request (0: none)")
	label := fs.String("label", "", "free text carried into the result, e.g. the server settings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sc, ok := scenarios[*name]
	if !ok {
		return fmt.Errorf("unknown scenario %q", *name)
	}
	if err := checkLoopback(*target); err != nil {
		return err
	}
	if *workers < 1 || *workers > 1024 || *dur <= 0 || *dur > 10*time.Minute || *maxReq < 1 {
		return errors.New("want 1 ≤ -c ≤ 1024, 0 < -d ≤ 10m, -n ≥ 1")
	}
	if *mcpPath == "" {
		*mcpPath = "/mcp"
		if *name == "whoami-noauth" || *name == "whoami-2026-noauth" {
			*mcpPath = "/noauth/mcp"
		}
	}
	env := &runEnv{
		target: *target, mcpPath: *mcpPath, user: *user, password: *password,
		hc: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConns:        *workers * 2,
				MaxIdleConnsPerHost: *workers * 2,
				IdleConnTimeout:     time.Minute,
			},
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	env.browser = newAuthorizer(env)
	env.workers, env.dpopProofs = *workers, *dpopProofs
	if strings.HasSuffix(*name, "-dpop") {
		var err error
		if env.dpop, err = newProofSigner(); err != nil {
			return err
		}
	}
	res, err := drive(ctx, env, sc, *workers, *warm, *dur, *maxReq, *pid, *dbPID)
	if err != nil {
		return err
	}
	res.Scenario, res.Label, res.Target = *name, *label, *target
	res.LiveProofs = env.liveProofs.Load()
	return json.NewEncoder(stdout).Encode(res)
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("target %q is not an http(s) URL", target)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q is not a loopback address", target)
}

// drive prepares the workers, runs them through the warm-up and the
// measured window, and computes the figures.
func drive(ctx context.Context, env *runEnv, sc scenario, workers int, warm, dur time.Duration, maxReq, pid, dbPID int) (*result, error) {
	ops := make([]op, workers)
	for i := range ops {
		o, err := sc(ctx, env, i)
		if err != nil {
			return nil, fmt.Errorf("preparing worker %d: %w", i, err)
		}
		ops[i] = o
	}
	res := &result{Workers: workers}
	if pid > 0 {
		res.RSSIdleKB, _ = procStatusKB(pid, "VmRSS")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now().Add(warm)
	var cpuStart, dbCPUStart time.Duration
	cpuStarted := make(chan struct{})
	go func() {
		defer close(cpuStarted)
		if pid <= 0 && dbPID <= 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start)):
			if pid > 0 {
				cpuStart, _ = procCPU(pid)
			}
			if dbPID > 0 {
				dbCPUStart, _ = procTreeCPU(dbPID)
			}
		}
	}()
	end := start.Add(dur)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr error
		taken    atomic.Int64
		wg       sync.WaitGroup
	)
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var myErrs int
			var myFirst error
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				measured := !t0.Before(start)
				if measured {
					if taken.Add(1) > int64(maxReq) {
						cancel()
						break
					}
				}
				err := o(ctx)
				if !measured {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					myErrs++
					if myFirst == nil {
						myFirst = err
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			if firstErr == nil {
				firstErr = myFirst
			}
			mu.Unlock()
		}()
	}
	if pid > 0 {
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					kb, _ := procStatusKB(pid, "VmRSS")
					anon, _ := procStatusKB(pid, "RssAnon")
					mu.Lock()
					res.RSSMaxKB = max(res.RSSMaxKB, kb)
					res.RSSAnonMaxKB = max(res.RSSAnonMaxKB, anon)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := min(time.Since(start), dur)
	var cpu, dbCPU time.Duration
	if pid > 0 || dbPID > 0 {
		<-cpuStarted
	}
	if pid > 0 {
		if end, err := procCPU(pid); err == nil && cpuStart > 0 {
			cpu = end - cpuStart
		}
	}
	if dbPID > 0 {
		if end, err := procTreeCPU(dbPID); err == nil && dbCPUStart > 0 {
			dbCPU = end - dbCPUStart
		}
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if pid > 0 {
		res.HWMKB, _ = procStatusKB(pid, "VmHWM")
	}
	res.Load1 = loadAverage()
	res.Seconds = elapsed.Seconds()
	res.Requests = len(lat)
	res.Errors = errs
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	if res.Seconds > 0 {
		res.RPS = float64(len(lat)) / res.Seconds
	}
	if cpu > 0 && len(lat) > 0 {
		res.CPUusPerReq = float64(cpu.Microseconds()) / float64(len(lat))
	}
	if dbCPU > 0 && len(lat) > 0 {
		res.DBCPUusPerReq = float64(dbCPU.Microseconds()) / float64(len(lat))
	}
	slices.Sort(lat)
	res.P50ms = quantileMS(lat, 0.50)
	res.P99ms = quantileMS(lat, 0.99)
	return res, nil
}

func quantileMS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}
