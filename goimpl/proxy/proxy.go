// SPDX-License-Identifier: Apache-2.0

// Package proxy is the local side of dc_client: it accepts the local
// applications' connections (normally on a unix socket) and answers their
// distcache requests from a store.Store through the protocol Handler, so
// that the same rules dc_server applies are applied here, before anything
// leaves the host. The store is a distcache upstream (goimpl/upstream) or
// any other store.Store.
//
// Each local connection is served one request at a time, in order: the
// next request is read only after the previous answer is written, so a
// client may pipeline and answers never interleave (E-4). A request the
// Handler answers by closing (an ADD shorter than 8 bytes, an unknown
// operation, a malformed frame) closes that one local connection; the
// others, and the store, never see it.
//
// When the Handler can start its store's calls without waiting (a
// *store.Handler over a store.Async: the upstream), one event loop
// serves every connection of a unix listener, kept ones too (async.go):
// it reads a request, starts the call and goes back to its wait, and the
// answer is written back by whoever has it, normally the same loop, which
// also reads the upstream connection (Options.Poll). Otherwise the
// connections of a unix listener are served by event loops while they
// are young (loop.go): no goroutine or net.Conn per connection for an
// application that connects once per request, the listener passed
// between the loops while one waits for the store. Persistent ones go on
// in a goroutine of their own.
//
// A local connection that is kept (Apache's, through the C library) is
// watched by the runtime's poller for reading only once it has served a
// few requests (rawio.Quiet): on a unix socket, each answer the
// application reads would otherwise wake a thread of this process for
// nothing.
package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
)

// Options configure a Proxy.
type Options struct {
	// Handler answers each request, normally a *store.Handler whose
	// Store is the upstream.
	Handler Handler
	// MaxClients caps the simultaneous local connections (0: no limit);
	// one more is accepted, logged and closed.
	MaxClients int
	// Idle drops a local connection that sends no request for this long
	// (0: never).
	Idle time.Duration
	// Log receives the rate-limited warnings. nil: a RateLog on stderr.
	Log accept.Logger
	// Metrics, when not nil, counts the local connections (accepted,
	// refused, closed by reason) and their bytes.
	Metrics *metrics.Registry
	// Poll, when set, is given the event loop of a unix listener whose
	// Handler starts store calls without waiting (async.go) while it
	// runs, and nil when it ends: an upstream.Upstream, so that the loop
	// reads the server's answers itself.
	Poll Pollable
}

// Pollable is a store whose connections an event loop may read
// (*upstream.Upstream).
type Pollable interface {
	// Poll has p's loop read the connections (nil: no more).
	Poll(p evloop.Poller)
	// Polled reports whether every connection is read by the loop: no
	// goroutine then waits for an answer.
	Polled() bool
}

// Handler answers one request message: the response payload appended to
// out[:0], or an error wrapping store.ErrClose when the connection must be
// closed without an answer. *store.Handler is one.
type Handler interface {
	Handle(ctx context.Context, req *proto.Message, out []byte) ([]byte, error)
}

// Proxy serves local clients. Its zero value is not usable: use New.
type Proxy struct {
	h    Handler
	idle time.Duration
	log  accept.Logger
	set  accept.Set
	m    *metrics.Registry
	send HandOff // set by HandOver; read once set.HandingOff()
	poll Pollable
}

// HandOff passes a local connection to the process that replaces this one
// with the request bytes read but not yet answered (out, the answers not
// yet written, is always empty here: an answer is written before the next
// read); handover.Sender.Send is one.
type HandOff func(nc net.Conn, out, in []byte) error

// New returns a Proxy; Serve runs it.
func New(o Options) *Proxy {
	if o.Log == nil {
		o.Log = new(accept.RateLog)
	}
	p := &Proxy{h: o.Handler, idle: o.Idle, log: o.Log, m: o.Metrics, poll: o.Poll}
	p.set = accept.Set{Max: o.MaxClients, Log: o.Log, OnFull: func(net.Conn) { p.refuse() }}
	return p
}

// refuse reports a connection refused at MaxClients.
func (p *Proxy) refuse() {
	p.m.ConnRefused(metrics.RefuseLimit)
	p.log.Printf("Error, rejected new client connection already at maximum (%d)", p.set.Max)
}

// Serve accepts and serves local clients until the listener is closed or
// fails.
func (p *Proxy) Serve(ln net.Listener) {
	if p.serveAsync(ln) || p.serveLoops(ln) {
		return
	}
	p.set.Serve(ln, func(nc net.Conn) { newClient(p, nc).serve() })
}

// HandOver makes the coming Shutdown a handover to a process that shares
// the listening socket: accepting stops first, then each client is passed
// to send once the request it is waiting for is answered (at once if it
// is waiting for none), with the bytes of its next request already read.
// With a nil send the clients are served for grace and closed at their
// next read.
func (p *Proxy) HandOver(send HandOff, grace time.Duration) {
	if send == nil {
		p.set.SetGrace(grace)
		return
	}
	p.send = send
	p.set.SetHandOff(false)
}

// Adopt serves a local connection the process this one replaces handed
// over (HandOver there); the request bytes in are read before the
// connection's own.
func (p *Proxy) Adopt(nc net.Conn, in []byte) {
	p.set.Adopt(nc, func(nc net.Conn) {
		c := newClient(p, nc)
		c.pre = in
		c.serve()
	})
}

// Closing reports whether Shutdown has begun.
func (p *Proxy) Closing() bool { return p.set.Closing() }

// Shutdown stops accepting, lets every client finish the request it is
// waiting for, and waits up to wait for them to go.
func (p *Proxy) Shutdown(ln net.Listener, wait time.Duration) { p.set.Shutdown(ln, wait) }

// client is one local connection. Its buffers are recycled when the
// application closes cleanly, since most applications connect once per
// operation.
type client struct {
	p     *Proxy
	nc    net.Conn   // nil while an event loop serves the connection
	io    rawio.Conn // reads and writes nc (or fd)
	rd    *proto.Reader
	pay   []byte // the answer's payload
	out   []byte // the answer's encoding
	first bool   // a Read call already happened for the current request
	rdl   time.Time
	wdl   time.Time
	pre   []byte // request bytes a predecessor read and did not answer (Adopt)
	// served counts the answers written; at quietAfter the connection is
	// made quiet (quiet.go): reg is then its registration as it was.
	served int
	quiet  bool
	reg    rawio.Registration

	// While an event loop serves the connection (loop.go): the loop, the
	// socket, its place among the connections waiting there, and the
	// part of an answer the socket did not take (written from the
	// connection's goroutine).
	lp         *pLoop
	al         *aLoop // the async loop serving it (async.go)
	fd         int
	watched    bool // in the loop's epoll set
	waiting    bool // in the loop's list
	prev, next *client
	unsent     []byte

	// While the event loop of a store that starts calls serves it
	// (async.go).
	as aConn
}

var clientPool sync.Pool

// newClient returns a client of nc, or of nothing yet (nil: an event
// loop's, which sets fd).
func newClient(p *Proxy, nc net.Conn) *client {
	c, ok := clientPool.Get().(*client)
	if ok {
		c.p, c.nc = p, nc
	} else {
		c = &client{p: p, nc: nc}
		c.as.c = c
		c.io.WriteWait = c.armWrite // kept with c in clientPool
		c.rd = proto.NewReader(c, proto.WantRequests)
	}
	if nc != nil {
		c.io.Reset(nc)
	}
	return c
}

var errClosing = errors.New("shutting down")

// Read arms the idle deadline before waiting for a new request.
func (c *client) Read(b []byte) (int, error) {
	var dl time.Time
	if !c.first && c.p.idle > 0 {
		dl = time.Now().Add(c.p.idle)
	}
	c.first = true
	if !dl.Equal(c.rdl) {
		c.rdl = dl
		c.nc.SetReadDeadline(dl) // never in a loop: no loops with Idle
	}
	if c.p.set.Closing() {
		return 0, errClosing
	}
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	if c.al != nil {
		c.as.edge.Store(false) // this read sees what the edge said
	}
	n, err := c.io.Read(b)
	if c.al != nil {
		c.as.full.Store(n == len(b))
	}
	c.p.m.BytesIn(n)
	return n, err
}

// clientWriteTimeout bounds how long an application may leave its answer
// unread (a variable for the tests).
var clientWriteTimeout = 30 * time.Second

// maxPooled is the largest buffer a recycled client keeps.
const maxPooled = 64 << 10

// armWrite sets the write deadline before a write waits for the first
// time (rawio.Conn.WriteWait).
func (c *client) armWrite() {
	if c.quiet {
		c.quiet = false // the wait needs the writing edge
		c.reg.Loud()
	}
	if c.wdl.IsZero() {
		c.wdl = time.Now().Add(clientWriteTimeout)
		c.nc.SetWriteDeadline(c.wdl)
	}
}

// serve serves a connection accepted or adopted into a goroutine of its
// own, in that goroutine, until it ends.
func (c *client) serve() {
	c.p.m.ConnAccepted()
	c.goServe()
}

// goServe serves the connection in this goroutine until it ends, from
// where it is (an event loop may have served it before: detach).
func (c *client) goServe() {
	if len(c.unsent) > 0 {
		if !c.write(c.unsent) {
			return
		}
		c.unsent = nil
	}
	c.run()
}

const closeError = metrics.CloseError

// end closes the connection (why, for the metrics) and recycles it if the
// application closed it cleanly.
func (c *client) end(why metrics.CloseReason, clean bool) {
	c.p.m.ConnClosed(why)
	if c.lp != nil {
		c.lp.closeConn(c)
	} else if c.al != nil {
		c.al.closeConn(c)
	} else if c.nc != nil { // nil: closed by a failed toNetConn
		c.nc.Close()
	}
	if clean && c.rd.Buffered() == 0 && cap(c.out) <= maxPooled && cap(c.pay) <= maxPooled {
		*c = client{rd: c.rd, out: c.out[:0], pay: c.pay[:0], io: c.io, as: aConn{c: c}}
		clientPool.Put(c)
	}
}

// run reads and answers requests until the connection ends (true) or, in
// an event loop, until it has to wait between two requests (false: the
// loop watches it). A connection that has to wait otherwise, or has been
// answered keptAfter times in its loop, goes on in a goroutine of its own
// (true).
func (c *client) run() (ended bool) {
	ctx := context.Background()
	for {
		if c.lp != nil && c.served >= keptAfter {
			c.lp.detach(c)
			return true
		}
		c.first = c.rd.Buffered() > 0
		m, err := c.rd.ReadMessage()
		if err == rawio.ErrWouldBlock {
			if c.rd.Buffered() == 0 && len(c.rd.Pending()) == 0 {
				return false // between two requests
			}
			c.lp.detach(c) // in the middle of one: the frame waits
			return true
		}
		if err != nil {
			c.readFailed(err)
			return true
		}
		lp := c.lp
		if lp != nil {
			lp.busy() // the listener goes to another loop for the call
		}
		c.pay, err = c.p.h.Handle(ctx, m, c.pay[:0])
		if lp != nil {
			lp.idle()
		}
		if err != nil {
			c.p.log.Printf("Warning, closing local client: %v", err)
			c.end(metrics.CloseCorrupt, false)
			return true
		}
		c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: c.pay})
		if c.lp != nil {
			n, err := c.io.Write(c.out)
			c.p.m.BytesOut(n)
			if err == rawio.ErrWouldBlock {
				// The rest is written from a goroutine, where the
				// write may wait (clientWriteTimeout).
				c.unsent = c.out[n:]
				c.lp.detach(c)
				return true
			}
			if err != nil {
				c.end(metrics.WriteCloseReason(err), false)
				return true
			}
			c.served++
			continue
		}
		if !c.write(c.out) {
			return true
		}
	}
}

// readFailed ends the connection (or hands it over) after its read
// failed, ended or was interrupted.
func (c *client) readFailed(err error) {
	if c.handOff(err) {
		c.end(metrics.CloseShutdown, false)
		return
	}
	clean := err == io.EOF
	if clean && !c.p.set.Closing() {
		c.end(metrics.CloseClient, true) // the common end, without walking error chains
		return
	}
	if proto.IsCorrupt(err) {
		c.p.log.Printf("Warning, closing local client: %v", err)
	}
	c.end(metrics.ReadCloseReason(err, c.p.set.Closing(), c.rd.Buffered() > 0), clean)
}

// write writes an answer (or its rest) from the connection's goroutine;
// false when that fails and the connection has ended.
func (c *client) write(b []byte) bool {
	// The write deadline is set when a write first has to wait
	// (armWrite): most never do, and a timer per connection costs more
	// than the write. Once set it is renewed at half time.
	if now := time.Now(); !c.wdl.IsZero() && c.wdl.Sub(now) < clientWriteTimeout/2 {
		c.wdl = now.Add(clientWriteTimeout)
		c.nc.SetWriteDeadline(c.wdl)
	}
	n, err := c.io.Write(b)
	c.p.m.BytesOut(n)
	if err != nil {
		c.end(metrics.WriteCloseReason(err), false)
		return false
	}
	if c.served++; c.served == quietAfter && c.io.Raw() {
		c.reg, c.quiet = rawio.Quiet(c.nc)
	}
	return true
}

// handOff passes the client to the successor when err is the handover's
// interruption; it reports whether the client is gone (passed, or dropped
// because it could not be: logged).
func (c *client) handOff(err error) bool {
	var ne net.Error
	if !c.p.set.HandingOff() || c.p.send == nil || !errors.Is(err, errClosing) && !(errors.As(err, &ne) && ne.Timeout()) {
		return false
	}
	if c.lp != nil && !c.lp.toNetConn(c) || c.al != nil && !c.al.toNetConn(c) {
		return true // closed (logged)
	}
	if err := c.p.send(c.nc, nil, append(c.rd.Pending(), c.pre...)); err != nil {
		c.p.log.Printf("Warning, could not hand a local client to the new process, closing it: %v", err)
	}
	return true
}
