package mcp

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// A multiplexConn is an sdk.Transport and the sdk.Connection it connects:
// it feeds the JSON-RPC calls of many HTTP requests into one long-lived
// ServerSession and hands each response back to the request that sent the
// call. It carries 2026-07-28 requests only (see directCall), which need
// no session: the go-sdk reads their protocol version, client
// capabilities and client info from each request's _meta, and the token
// and headers travel with each call in its RequestExtra, never in the
// session.
//
// Calls are renumbered on the way in (two clients may both send id 1) and
// the session's response carries the connection's number, which call maps
// back; the caller restores the client's id.
//
// Nothing but responses has anywhere to go: a notification or a
// server-to-client request written on the connection is refused with the
// go-sdk's "rejected by transport" code, which fails that one write and
// leaves the session serving (any other write error would end it, and
// every call in flight with it).
type multiplexConn struct {
	incoming chan *jsonrpc.Request
	done     chan struct{}
	close    sync.Once
	nextID   atomic.Int64

	mu      sync.Mutex
	waiting map[int64]chan *jsonrpc.Response
}

// errRejected has the code of the go-sdk's jsonrpc2.ErrRejected (-32005):
// a write refused by the transport, which does not break the connection.
var errRejected = &jsonrpc.Error{Code: -32005, Message: "rejected by transport: a 2026-07-28 request answered as application/json carries its result alone"}

// errConnClosed is what call returns once the connection is closed.
var errConnClosed = errors.New("mcp: shared session closed")

func newMultiplexConn() *multiplexConn {
	return &multiplexConn{
		incoming: make(chan *jsonrpc.Request),
		done:     make(chan struct{}),
		waiting:  make(map[int64]chan *jsonrpc.Response),
	}
}

// Connect implements sdk.Transport; a multiplexConn connects once.
func (c *multiplexConn) Connect(context.Context) (sdk.Connection, error) { return c, nil }

// SessionID implements sdk.Connection: the shared session has no id, as a
// stateless one has none.
func (c *multiplexConn) SessionID() string { return "" }

// Read implements sdk.Connection: the next call sent by call.
func (c *multiplexConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case req := <-c.incoming:
		return req, nil
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write implements sdk.Connection: it hands a response to the call
// waiting for it and refuses everything else.
func (c *multiplexConn) Write(_ context.Context, msg jsonrpc.Message) error {
	resp, ok := msg.(*jsonrpc.Response)
	if !ok {
		return errRejected
	}
	n, _ := resp.ID.Raw().(int64)
	c.mu.Lock()
	ch := c.waiting[n]
	delete(c.waiting, n)
	c.mu.Unlock()
	if ch == nil {
		// No call of ours has this id; nobody could read the answer.
		return errRejected
	}
	ch <- resp // buffered: the waiter may have gone
	return nil
}

// Close implements sdk.Connection.
func (c *multiplexConn) Close() error {
	c.close.Do(func() { close(c.done) })
	return nil
}

// closed reports whether the connection has been closed.
func (c *multiplexConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// call sends req to the session under a number of the connection's own
// and waits for the session's response, whose id is that number. Like the
// go-sdk's stateless handler, which waits for its one-request session to
// finish, it waits however long the handler takes; a client that goes
// away does not cancel it.
func (c *multiplexConn) call(req *jsonrpc.Request) (*jsonrpc.Response, error) {
	n := c.nextID.Add(1)
	id, err := jsonrpc.MakeID(float64(n))
	if err != nil {
		return nil, err
	}
	req.ID = id
	ch := make(chan *jsonrpc.Response, 1)
	c.mu.Lock()
	c.waiting[n] = ch
	c.mu.Unlock()
	select {
	case c.incoming <- req:
	case <-c.done:
		c.mu.Lock()
		delete(c.waiting, n)
		c.mu.Unlock()
		return nil, errConnClosed
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.done:
		return nil, errConnClosed
	}
}

// sharedSessions is a fixed set of long-lived ServerSessions of one
// sdk.Server, each over its own multiplexConn, used in turn. The go-sdk
// starts each call on a session in order, up to the point where its
// handler may run concurrently (jsonrpc2.Async), so more than one session
// keeps that first step from being a queue. A session whose connection
// has closed is replaced on its next use.
type sharedSessions struct {
	server *sdk.Server
	state  func() *sdk.ServerSessionState
	next   atomic.Uint64
	slots  []atomic.Pointer[multiplexConn]
	mu     sync.Mutex // serialises replacing a slot's session
}

// newSharedSessions makes n slots (at least one) whose sessions are
// connected with the state that state returns.
func newSharedSessions(server *sdk.Server, n int, state func() *sdk.ServerSessionState) *sharedSessions {
	return &sharedSessions{server: server, state: state, slots: make([]atomic.Pointer[multiplexConn], max(n, 1))}
}

// conn returns the connection of the next slot, connecting a session for
// it first if it has none or its session has ended.
func (p *sharedSessions) conn() (*multiplexConn, error) {
	slot := &p.slots[p.next.Add(1)%uint64(len(p.slots))]
	if c := slot.Load(); c != nil && !c.closed() {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := slot.Load(); c != nil && !c.closed() {
		return c, nil
	}
	c := newMultiplexConn()
	// Not the context of the request that happens to connect the session:
	// its handlers' contexts derive from this one, and must carry nothing
	// of any one request (its token least of all).
	if _, err := p.server.Connect(context.Background(), c, &sdk.ServerSessionOptions{State: p.state()}); err != nil {
		return nil, err
	}
	slot.Store(c)
	return c, nil
}

// call sends req on one of the sessions and returns its response.
func (p *sharedSessions) call(req *jsonrpc.Request) (*jsonrpc.Response, error) {
	c, err := p.conn()
	if err != nil {
		return nil, err
	}
	return c.call(req)
}
