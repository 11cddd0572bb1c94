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
//
// The two caps act differently. At the total cap the listener stops
// accepting until a connection closes: new ones wait in the kernel's
// queue, costing the server nothing, where answering each would cost an
// accept, a write and a close per attempt (a slow-loris attacker that
// retries every second made that thousands a second). Over one address's
// cap a connection is accepted and answered 503 at once, so that the
// other addresses are not held up behind it.
type connLimits struct {
	max     int // 0: no cap
	perAddr int // 0: no cap
	trusted []netip.Prefix
	log     *slog.Logger
	now     func() time.Time

	slots chan struct{} // one per open connection; nil without a total cap

	mu       sync.Mutex
	byAddr   map[netip.Addr]int
	refused  int       // since the last warning
	warnedAt time.Time // when the last warning was logged
}

func newConnLimits(max, perAddr int, trusted []netip.Prefix, log *slog.Logger) *connLimits {
	l := &connLimits{max: max, perAddr: perAddr, trusted: trusted, log: log, now: time.Now, byAddr: make(map[netip.Addr]int)}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	return l
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
	return a, l.perAddr > 0
}

// admitAddr counts a new connection from key and reports whether it is
// within its address's cap; a refused one is not counted.
func (l *connLimits) admitAddr(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key] >= l.perAddr {
		l.refused++
		// Once a minute at most: a flood must not become a flood of logs.
		if t := l.now(); t.Sub(l.warnedAt) >= time.Minute {
			l.log.Warn("refusing connections over the cap of one client address (--max-connections-per-address)", "address", key.String(), "refused", l.refused)
			l.warnedAt, l.refused = t, 0
		}
		return false
	}
	l.byAddr[key]++
	return true
}

func (l *connLimits) releaseAddr(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// noteFull logs, once per minute at most, that the total cap was reached.
func (l *connLimits) noteFull() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.now(); t.Sub(l.warnedAt) >= time.Minute {
		l.log.Warn("at the cap of open connections (--max-connections): new connections wait until one closes", "cap", l.max)
		l.warnedAt = t
	}
}

// listener wraps ln so that Accept hands out only connections within the
// caps.
func (l *connLimits) listener(ln net.Listener) net.Listener {
	if l.max <= 0 && l.perAddr <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, l: l, closed: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	l         *connLimits
	closed    chan struct{}
	closeOnce sync.Once
}

// overCapResponse is what a connection over its address's cap reads
// before it is closed.
const overCapResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 45\r\n\r\ntoo many connections; try again in a moment\r\n"

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		if ll.l.slots != nil {
			select {
			case ll.l.slots <- struct{}{}:
			default:
				ll.l.noteFull()
				select {
				case ll.l.slots <- struct{}{}:
				case <-ll.closed:
					return nil, net.ErrClosed
				}
			}
		}
		c, err := ll.Listener.Accept()
		if err != nil {
			ll.freeSlot()
			return nil, err
		}
		key, perAddr := ll.l.connKey(c.RemoteAddr())
		if perAddr && !ll.l.admitAddr(key) {
			ll.freeSlot()
			// A fresh socket's send buffer is empty, so this write does
			// not wait for the client; the deadline is there all the same.
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, overCapResponse)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() {
			if perAddr {
				ll.l.releaseAddr(key)
			}
			ll.freeSlot()
		}}, nil
	}
}

func (ll *limitedListener) freeSlot() {
	if ll.l.slots != nil {
		<-ll.l.slots
	}
}

// Close also ends an Accept waiting for a free slot.
func (ll *limitedListener) Close() error {
	ll.closeOnce.Do(func() { close(ll.closed) })
	return ll.Listener.Close()
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
		// A deadline left by the previous request on this connection
		// must not cut this one short.
		if rl.WriteTimeout > 0 {
			rc.SetWriteDeadline(time.Time{})
		}
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, timeout: rl.WriteTimeout}, r)
		// net/http flushes what is buffered after the handler returns.
		if rl.WriteTimeout > 0 {
			rc.SetWriteDeadline(time.Now().Add(rl.WriteTimeout))
		}
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
// through, counted from the write (none when it is 0). It also closes the
// connection after a 413: the rest of that body is unread, and
// http.MaxBytesReader's own signal to net/http to close does not pass the
// wrappers of the middleware in between, so net/http would otherwise read
// the rest of the body as the next request.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) extend() {
	if d.timeout > 0 {
		d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	}
}

func (d *deadlineWriter) WriteHeader(code int) {
	if code == http.StatusRequestEntityTooLarge {
		d.Header().Set("Connection", "close")
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(p)
}

// FlushError lets http.ResponseController flush through the wrapper and
// see the error.
func (d *deadlineWriter) FlushError() error {
	d.extend()
	return d.rc.Flush()
}

// Flush serves callers that look for http.Flusher.
func (d *deadlineWriter) Flush() { d.FlushError() }

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
