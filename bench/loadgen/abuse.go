package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cmdAbuse runs the abuse scenarios of docs/reliability.md one after the
// other, each against a fresh `mcpd serve` with its shipped limits, over
// loopback only: slow-loris headers and bodies, idle connections,
// oversized bodies, JSON-RPC bombs, hostile text, thousands of MCP
// streams from one token, and a registration flood from many addresses.
// While each runs, a well-behaved client asks /healthz every 20 ms on a
// connection it opened before the attack, and the server's memory is
// sampled. Each scenario prints one JSON line; a Markdown table follows.
func cmdAbuse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("abuse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin/mcpd", "mcpd binary")
	dur := fs.Duration("d", 15*time.Second, "duration of each scenario")
	conns := fs.Int("conns", 5000, "connections of the connection scenarios")
	addrs := fs.Int("addrs", 64, "loopback source addresses the attackers spread over (127.10.0.0/16)")
	only := fs.String("only", "", "comma-separated scenarios to run (default all)")
	dir := fs.String("dir", "", "data directory parent (default a temporary one, removed at the end)")
	extra := fs.String("serve-args", "", "extra flags for mcpd serve, space-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dur <= 0 || *dur > 10*time.Minute || *conns < 1 || *conns > 20000 || *addrs < 1 || *addrs > 60000 {
		return errors.New("want 0 < -d ≤ 10m, 1 ≤ -conns ≤ 20000, 1 ≤ -addrs ≤ 60000")
	}
	// The attackers' connections and the server's each need a descriptor.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(*conns)+200 {
		n := max(int(lim.Cur)-200, 1)
		fmt.Fprintf(stderr, "abuse: the open-file limit is %d, so -conns %d becomes %d\n", lim.Cur, *conns, n)
		*conns = n
	}
	parent := *dir
	if parent == "" {
		var err error
		if parent, err = os.MkdirTemp("", "mcpd-abuse-"); err != nil {
			return err
		}
		defer os.RemoveAll(parent)
	}
	var rows []abuseResult
	failed := false
	for _, sc := range abuseScenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), sc.name) {
			continue
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		c := &campaign{
			bin: *bin, data: filepath.Join(parent, "data-"+sc.name), addr: addr, out: stdout,
			logPath: filepath.Join(parent, "serve-"+sc.name+".log"), password: "abuse-" + randomString(9),
			args: strings.Fields(*extra),
		}
		res, err := runAbuse(ctx, c, sc, *dur, *conns, *addrs)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		json.NewEncoder(stdout).Encode(res)
		rows = append(rows, res)
		failed = failed || res.Crashed || res.ServerErrors > 0
	}
	fmt.Fprintf(stdout, "\n| scenario | what the attacker got | healthz p50 / p99 / max ms | healthz errors | RSS before → max MB |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(stdout, "| %s | %s | %.1f / %.1f / %.1f | %d | %.1f → %.1f |\n", r.Scenario, r.Attack, r.HealthzP50, r.HealthzP99, r.HealthzMax, r.HealthzErrors, float64(r.RSSBeforeKB)/1024, float64(r.RSSMaxKB)/1024)
	}
	fmt.Fprintf(stdout, "\nmachine: %d cores, load %.1f, %s\n", runtime.NumCPU(), loadAverage(), time.Now().UTC().Format("2006-01-02T15:04Z"))
	if failed {
		return errors.New("the server crashed or answered 5xx in a scenario")
	}
	return nil
}

// abuseResult is one scenario's figures.
type abuseResult struct {
	Scenario      string         `json:"scenario"`
	Seconds       float64        `json:"seconds"`
	Attack        string         `json:"attack"`
	Counts        map[string]int `json:"counts"`
	HealthzN      int            `json:"healthz_n"`
	HealthzP50    float64        `json:"healthz_p50_ms"`
	HealthzP99    float64        `json:"healthz_p99_ms"`
	HealthzMax    float64        `json:"healthz_max_ms"`
	HealthzErrors int            `json:"healthz_errors"`
	RSSBeforeKB   int            `json:"rss_before_kb"`
	RSSMaxKB      int            `json:"rss_max_kb"`
	ServerErrors  int            `json:"server_5xx"`
	Crashed       bool           `json:"crashed"`
}

// abuseEnv is what a scenario gets: the target, a token with every notes
// scope, a confidential client, and the attackers' source addresses.
type abuseEnv struct {
	target, addr string
	token        string
	ccID         string
	ccSecret     string
	addrs        int
	conns        int
	oneShot      bool // one request per connection
	counts       counters
}

// counters are a scenario's named counts, safe for its goroutines.
type counters struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counters) add(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[name] += n
}

func (c *counters) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// source is attacker i's local address: 127.10.0.0/16, never the
// prober's 127.0.0.1.
func (e *abuseEnv) source(i int) *net.TCPAddr {
	n := i % e.addrs
	return &net.TCPAddr{IP: net.IPv4(127, 10, byte(n>>8), byte(n&255)+1)}
}

func (e *abuseEnv) dial(ctx context.Context, i int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: e.source(i), Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", e.addr)
}

// client is an HTTP client whose connections come from attacker i.
func (e *abuseEnv) client(i int) *http.Client {
	d := &net.Dialer{LocalAddr: e.source(i), Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, DisableKeepAlives: e.oneShot}}
}

type abuseScenario struct {
	name string
	run  func(ctx context.Context, e *abuseEnv) string // returns a one-line description of what the attacker got
}

var abuseScenarios = []abuseScenario{
	// No attack: the well-behaved client's figures on this machine, now.
	{"baseline", func(ctx context.Context, _ *abuseEnv) string { <-ctx.Done(); return "none" }},
	{"slowloris-headers", slowConns("GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1\r\n")},
	{"slowloris-bodies", slowConns("POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n", "a")},
	{"idle-connections", slowConns("", "")},
	{"oversized-bodies", oversizedBodies},
	{"jsonrpc-bombs", jsonrpcBombs},
	{"hostile-text", hostileText},
	{"mcp-streams-one-token", mcpStreams},
	{"registration-flood", registrationFlood},
}

func runAbuse(ctx context.Context, c *campaign, sc abuseScenario, dur time.Duration, conns, addrs int) (abuseResult, error) {
	res := abuseResult{Scenario: sc.name}
	if err := c.start(ctx); err != nil {
		return res, err
	}
	defer c.stop()
	env := &abuseEnv{target: c.target(), addr: c.addr, addrs: addrs, conns: conns}
	setup := &runEnv{target: env.target, hc: &http.Client{Timeout: 10 * time.Second}}
	var err error
	if env.ccID, env.ccSecret, err = setup.registerConfidential(ctx, "abuse"); err != nil {
		return res, err
	}
	if env.token, err = setup.clientCredentialsToken(ctx, env.ccID, env.ccSecret, "notes:read notes:write"); err != nil {
		return res, err
	}

	pid := c.pid()
	time.Sleep(500 * time.Millisecond) // let the first start's work settle
	res.RSSBeforeKB, _ = procStatusKB(pid, "VmRSS")
	pr, err := newProber(env.target)
	if err != nil {
		return res, err
	}
	actx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
				kb, _ := procStatusKB(pid, "VmRSS")
				res.RSSMaxKB = max(res.RSSMaxKB, kb)
			}
		}
	}()
	proberDone := pr.run(actx)
	t0 := time.Now()
	res.Attack = sc.run(actx, env)
	cancel()
	<-samplerDone
	lat, perr := <-proberDone, pr.errors.Load()
	res.Seconds = time.Since(t0).Seconds()
	slices.Sort(lat)
	res.HealthzN = len(lat)
	res.HealthzP50, res.HealthzP99 = quantileMS(lat, 0.5), quantileMS(lat, 0.99)
	if len(lat) > 0 {
		res.HealthzMax = float64(lat[len(lat)-1].Microseconds()) / 1000
	}
	res.HealthzErrors = int(perr)
	res.Counts = env.counts.snapshot()
	res.ServerErrors = res.Counts["5xx"]
	res.Crashed = !c.alive()
	if hwm, err := procStatusKB(pid, "VmHWM"); err == nil {
		res.RSSMaxKB = max(res.RSSMaxKB, hwm)
	}
	return res, nil
}

// prober is the well-behaved client: GET /healthz every 20 ms on one
// kept-alive connection from 127.0.0.1, opened before the attack.
type prober struct {
	target string
	hc     *http.Client
	errors atomic.Int64
}

func newProber(target string) (*prober, error) {
	p := &prober{target: target, hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}}
	return p, p.once()
}

func (p *prober) once() error {
	resp, err := p.hc.Get(p.target + "/healthz")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

func (p *prober) run(ctx context.Context) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	go func() {
		var lat []time.Duration
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- lat
				return
			case <-t.C:
			}
			t0 := time.Now()
			if err := p.once(); err != nil {
				if ctx.Err() == nil {
					p.errors.Add(1)
					if os.Getenv("ABUSE_DEBUG") != "" {
						fmt.Fprintf(os.Stderr, "%s probe error after %s: %v\n", time.Now().Format("15:04:05.000"), time.Since(t0), err)
					}
				}
				continue
			}
			lat = append(lat, time.Since(t0))
			if d := time.Since(t0); d > 100*time.Millisecond && os.Getenv("ABUSE_DEBUG") != "" {
				fmt.Fprintf(os.Stderr, "%s probe slow: %s\n", time.Now().Format("15:04:05.000"), d)
			}
		}
	}()
	return out
}

// slowConns holds e.conns connections that send start, then one more
// piece every two seconds (nothing at all when start is empty: idle
// connections). A connection the server refuses or closes is opened again
// a second later.
func slowConns(start, piece string) func(ctx context.Context, e *abuseEnv) string {
	return func(ctx context.Context, e *abuseEnv) string {
		var open, maxOpen atomic.Int64
		var wg sync.WaitGroup
		for i := range e.conns {
			wg.Go(func() {
				for ctx.Err() == nil {
					c, err := e.dial(ctx, i)
					if err != nil {
						e.counts.add("dial errors", 1)
						sleepCtx(ctx, time.Second)
						continue
					}
					e.counts.add("connections opened", 1)
					n := open.Add(1)
					for m := maxOpen.Load(); n > m && !maxOpen.CompareAndSwap(m, n); m = maxOpen.Load() {
					}
					why := holdSlow(ctx, c, start, piece)
					open.Add(-1)
					c.Close()
					e.counts.add(why, 1)
					// A slow client holds what it can and comes back when
					// cut off; hammering connect() is another attack.
					sleepCtx(ctx, time.Second)
				}
			})
			if i%100 == 99 {
				sleepCtx(ctx, 20*time.Millisecond) // a ramp of 5,000 a second, not a SYN flood
			}
		}
		wg.Wait()
		c := e.counts.snapshot()
		return fmt.Sprintf("%d connections held at most, %d opened; %d answered 503, %d cut off by the server (%d answered 4xx)",
			maxOpen.Load(), c["connections opened"], c["refused with 503"], c["cut off"]+c["answered 4xx"], c["answered 4xx"])
	}
}

// holdSlow sends start and then piece every two seconds until the server
// closes the connection or ctx ends, and says which.
func holdSlow(ctx context.Context, c net.Conn, start, piece string) string {
	if start != "" {
		if _, err := io.WriteString(c, start); err != nil {
			return "cut off"
		}
	}
	closed := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		switch {
		case err == nil && strings.Contains(line, " 503 "):
			closed <- "refused with 503"
		case err == nil && strings.Contains(line, " 4"):
			closed <- "answered 4xx"
		case err == nil:
			closed <- "answered " + strings.TrimSpace(line)
		default:
			closed <- "cut off"
		}
	}()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "held to the end"
		case why := <-closed:
			return why
		case <-t.C:
			if piece != "" {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := io.WriteString(c, piece); err != nil {
					return "cut off"
				}
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// statusWorkers runs n workers doing req in a loop and counts statuses.
func statusWorkers(ctx context.Context, e *abuseEnv, n int, req func(i, k int) (*http.Request, error)) {
	statusWorkersFrom(ctx, e, n, func(i, _ int) int { return i }, req)
}

// statusWorkersFrom is statusWorkers with request k of worker i sent from
// attacker address from(i, k).
func statusWorkersFrom(ctx context.Context, e *abuseEnv, n int, from func(i, k int) int, req func(i, k int) (*http.Request, error)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			clients := map[int]*http.Client{}
			for k := 0; ctx.Err() == nil; k++ {
				a := from(i, k)
				hc := clients[a]
				if hc == nil {
					hc = e.client(a)
					clients[a] = hc
				}
				r, err := req(i, k)
				if err != nil {
					return
				}
				resp, err := hc.Do(r.WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						e.counts.add("transport errors", 1)
					}
					continue
				}
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				e.counts.add(fmt.Sprint(resp.StatusCode), 1)
				// 503 is a refusal by design (a cap reached); any other
				// 5xx is a server error.
				if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
					e.counts.add("5xx", 1)
				}
			}
		})
	}
	wg.Wait()
}

// summary lists the status counts of a scenario, largest first.
func (e *abuseEnv) summary() string {
	c := e.counts.snapshot()
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return c[b] - c[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// oversizedBodies posts 2 MiB bodies to every POST endpoint, with a
// Content-Length and chunked.
func oversizedBodies(ctx context.Context, e *abuseEnv) string {
	paths := []string{"/token", "/revoke", "/introspect", "/register", "/authorize/login", "/authorize/consent", "/mcp"}
	body := strings.Repeat("a", 2<<20)
	statusWorkers(ctx, e, 8, func(i, k int) (*http.Request, error) {
		path := paths[(i+k)%len(paths)]
		var r io.Reader = strings.NewReader(body)
		if k%2 == 1 {
			r = struct{ io.Reader }{r} // no length: chunked
		}
		req, err := http.NewRequest(http.MethodPost, e.target+path, r)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if path == "/mcp" || path == "/register" {
			e.asMCPCall(req)
		}
		return req, nil
	})
	return "2 MiB bodies to 7 POST endpoints: " + e.summary()
}

// asMCPCall gives req the headers of an authenticated /mcp POST: JSON in,
// JSON or an event stream out, the scenario's bearer token.
func (e *abuseEnv) asMCPCall(req *http.Request) {
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e.token)
}

// jsonrpcBombs posts deeply nested JSON and batches of 8,000 calls (900 KB) to
// /mcp with a valid token.
func jsonrpcBombs(ctx context.Context, e *abuseEnv) string {
	const depth = 400_000
	var batch strings.Builder
	batch.WriteByte('[')
	for i := range 8_000 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":"b"}}}`, i)
	}
	batch.WriteByte(']')
	bodies := []string{
		strings.Repeat("[", depth) + strings.Repeat("]", depth),
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"t","body":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}}}",
		batch.String(),
	}
	statusWorkers(ctx, e, 4, func(i, k int) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, e.target+"/mcp", strings.NewReader(bodies[(i+k)%len(bodies)]))
		if err != nil {
			return nil, err
		}
		e.asMCPCall(req)
		return req, nil
	})
	return "800 KB nesting and 8,000-call batches to /mcp: " + e.summary()
}

// hostileText sends NUL bytes and bytes that are not UTF-8 in the text
// fields of registrations, token requests and note writes.
func hostileText(ctx context.Context, e *abuseEnv) string {
	values := []string{"a\x00b", "a\xff\xfeb", "a\xed\xa0\x80b", "a\u202eb", "a\r\nb"}
	statusWorkers(ctx, e, 4, func(i, k int) (*http.Request, error) {
		v := values[k%len(values)]
		var req *http.Request
		var err error
		switch (i + k) % 3 {
		case 0:
			req, err = http.NewRequest(http.MethodPost, e.target+"/register", strings.NewReader(`{"client_name":"`+v+`","redirect_uris":["http://127.0.0.1/`+v+`"],"token_endpoint_auth_method":"none"}`))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
		case 1:
			req, err = http.NewRequest(http.MethodPost, e.target+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {v}, "resource": {v}}.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(e.ccID, e.ccSecret)
			}
		default:
			req, err = http.NewRequest(http.MethodPost, e.target+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note_save","arguments":{"title":"`+v+`","body":"`+v+`"}}}`))
			if err == nil {
				e.asMCPCall(req)
			}
		}
		return req, err
	})
	return "NUL, bad UTF-8, bidi and CR LF in registrations, token requests, note writes: " + e.summary()
}

// mcpStreams opens e.conns MCP sessions with one token, each with its
// event stream held open.
func mcpStreams(ctx context.Context, e *abuseEnv) string {
	var held, maxHeld atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*http.Client, min(e.addrs, 64))
	for i := range clients {
		clients[i] = e.client(i)
	}
	sem := make(chan struct{}, 64) // sessions being opened at once
	for i := range e.conns {
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			s := &mcpSession{env: &runEnv{hc: clients[i%len(clients)]}, url: e.target + "/mcp", token: e.token}
			err := s.open(ctx)
			<-sem
			if err != nil {
				e.counts.add(statusOf(err), 1)
				return
			}
			e.counts.add("sessions opened", 1)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.target+"/mcp", nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+e.token)
			req.Header.Set("Mcp-Session-Id", s.sid)
			req.Header.Set("MCP-Protocol-Version", protocolVersion)
			resp, err := s.env.hc.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				e.counts.add("stream "+fmt.Sprint(resp.StatusCode), 1)
				return
			}
			e.counts.add("streams opened", 1)
			n := held.Add(1)
			for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
			}
			io.Copy(io.Discard, resp.Body) // until the server or ctx ends it
			held.Add(-1)
		})
	}
	wg.Wait()
	c := e.counts.snapshot()
	return fmt.Sprintf("%d initialize attempts: %d sessions, %d streams held at most; refused: initialize 429×%d, stream 429×%d, stream 404×%d",
		e.conns, c["sessions opened"], maxHeld.Load(), c["429"], c["stream 429"], c["stream 404"])
}

// statusOf names the HTTP status in a loadgen error, or "transport errors".
func statusOf(err error) string {
	for _, code := range []string{"400", "401", "403", "404", "413", "429", "500", "503"} {
		if strings.Contains(err.Error(), ": "+code+" ") {
			return code
		}
	}
	return "transport errors"
}

// registrationFlood registers clients from many addresses at once: 32
// workers, each request from the next of 4,096 addresses, on a connection
// of its own.
func registrationFlood(ctx context.Context, e *abuseEnv) string {
	const sources = 4096
	flood := &abuseEnv{target: e.target, addr: e.addr, addrs: sources, oneShot: true}
	statusWorkersFrom(ctx, flood, 32, func(i, k int) int { return (i + 32*k) % sources }, func(i, k int) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, e.target+"/register", strings.NewReader(`{"client_name":"flood","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	})
	for k, v := range flood.counts.snapshot() {
		e.counts.add(k, v)
	}
	return fmt.Sprintf("from %d addresses: %s", sources, e.summary())
}
