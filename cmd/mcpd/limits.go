package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The HTTP server's defences against slow and greedy clients, below the
// handlers: how many connections are open, how long a client may take to
// send a body, how long one write may block, and how large a body may be.
// Header timeouts and idle keep-alive timeouts are http.Server's own
// (ReadHeaderTimeout, IdleTimeout).

// connLimits caps the open connections of a listener, in total and per
// client address. An IPv6 address counts by its /64, since one host
// commonly holds a whole /64; a trusted proxy's address has no cap of its
// own (it carries many clients), only the total.
type connLimits struct {
	max     int // 0: no cap
	perAddr int // 0: no cap
	trusted []netip.Prefix
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	open     int
	byAddr   map[netip.Addr]int
	refused  int       // since the last warning
	warnedAt time.Time // when the last warning was logged
}

func newConnLimits(max, perAddr int, trusted []netip.Prefix, log *slog.Logger) *connLimits {
	return &connLimits{max: max, perAddr: perAddr, trusted: trusted, log: log, now: time.Now, byAddr: make(map[netip.Addr]int)}
}

// connKey is the per-address key of a connection's peer, and whether the
// per-address cap applies to it.
func (l *connLimits) connKey(remote net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range l.trusted {
		if p.Contains(a) {
			return a, false
		}
	}
	if a.Is6() {
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a, true
}

// admit counts a new connection from key and reports whether it is within
// the caps; a refused one is not counted.
func (l *connLimits) admit(key netip.Addr, perAddr bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	over := ""
	switch {
	case l.max > 0 && l.open >= l.max:
		over = "the server's cap (--max-connections)"
	case perAddr && l.perAddr > 0 && l.byAddr[key] >= l.perAddr:
		over = "the cap of one client address (--max-connections-per-address)"
	}
	if over != "" {
		l.refused++
		// Once a minute at most: a flood must not become a flood of logs.
		if t := l.now(); t.Sub(l.warnedAt) >= time.Minute {
			l.log.Warn("refusing connections over "+over, "open", l.open, "refused", l.refused, "address", key.String())
			l.warnedAt, l.refused = t, 0
		}
		return false
	}
	l.open++
	if perAddr {
		l.byAddr[key]++
	}
	return true
}

func (l *connLimits) release(key netip.Addr, perAddr bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if perAddr {
		if l.byAddr[key]--; l.byAddr[key] <= 0 {
			delete(l.byAddr, key)
		}
	}
}

// Open is the number of connections counted now.
func (l *connLimits) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// listener wraps ln so that Accept hands out only connections within the
// caps. A connection over a cap is answered 503 and closed at once, rather
// than left waiting in the kernel's queue where it would hold up the
// well-behaved clients behind it.
func (l *connLimits) listener(ln net.Listener) net.Listener {
	if l.max <= 0 && l.perAddr <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, l: l}
}

type limitedListener struct {
	net.Listener
	l *connLimits
}

// overCapResponse is what a refused connection reads before it is closed.
const overCapResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 45\r\n\r\ntoo many connections; try again in a moment\r\n"

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, perAddr := ll.l.connKey(c.RemoteAddr())
		if ll.l.admit(key, perAddr) {
			return &limitedConn{Conn: c, release: func() { ll.l.release(key, perAddr) }}, nil
		}
		// A fresh socket's send buffer is empty, so this write does not
		// wait for the client; the deadline is there all the same.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		io.WriteString(c, overCapResponse)
		c.Close()
	}
}

// limitedConn gives its place back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// requestLimits are the per-request deadlines and the body cap.
type requestLimits struct {
	// BodyTimeout is how long a client may take to send a request body,
	// counted from the moment its headers were read; 0: no limit.
	BodyTimeout time.Duration
	// WriteTimeout is how long one write of a response may block on a
	// client that does not read; 0: no limit. It is not a limit on the
	// whole response, so event streams stay open as long as their writes
	// go through.
	WriteTimeout time.Duration
	// MaxBodyBytes caps every request body; a larger one is answered 413.
	// Handlers may set lower caps of their own. 0: no cap here.
	MaxBodyBytes int64
}

// middleware applies the limits to every request. The deadlines are the
// connection's, set through http.ResponseController for this request
// only: a server-wide ReadTimeout would also end long-lived MCP event
// streams (net/http cancels a request's context when its connection's
// read deadline passes), and a server-wide WriteTimeout would cut them
// after a fixed time however well the client reads.
func (rl requestLimits) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rl.MaxBodyBytes > 0 && r.ContentLength > rl.MaxBodyBytes {
			w.Header().Set("Connection", "close")
			http.Error(w, "request body larger than "+strconv.FormatInt(rl.MaxBodyBytes, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			body := r.Body
			if rl.MaxBodyBytes > 0 {
				body = http.MaxBytesReader(w, body, rl.MaxBodyBytes)
			}
			if rl.BodyTimeout > 0 {
				rc.SetReadDeadline(time.Now().Add(rl.BodyTimeout))
				body = &deadlineBody{ReadCloser: body, rc: rc}
			}
			r.Body = body
		}
		if rl.WriteTimeout <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		// A deadline left by the previous request on this connection
		// must not cut this one short.
		rc.SetWriteDeadline(time.Time{})
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, timeout: rl.WriteTimeout}, r)
		// net/http flushes what is buffered after the handler returns.
		rc.SetWriteDeadline(time.Now().Add(rl.WriteTimeout))
	})
}

// deadlineBody lifts the read deadline once the body has been read to its
// end: what the connection reads after that is the next request (or
// nothing, for a long answer), which is not this body's business.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadlineWriter gives every write of a response WriteTimeout to go
// through, counted from the write.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(p)
}

// FlushError lets http.ResponseController flush through the wrapper and
// see the error.
func (d *deadlineWriter) FlushError() error {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.rc.Flush()
}

// Flush serves callers that look for http.Flusher.
func (d *deadlineWriter) Flush() { d.FlushError() }

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
