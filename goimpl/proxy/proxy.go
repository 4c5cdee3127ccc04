// SPDX-License-Identifier: Apache-2.0

// Package proxy is the local side of dc_client: it accepts the local
// applications' connections (normally on a unix socket) and answers their
// distcache requests from a store.Store through the protocol Handler, so
// that the same rules dc_server applies are applied here, before anything
// leaves the host. The store is a distcache upstream (goimpl/upstream) or
// any other store.Store (Redis, the sealing wrapper).
//
// One event loop serves every connection of a listener, young or kept,
// unix or TCP, and those Adopt is given (async.go): it reads a request,
// and either starts the store call (a *store.Handler over a store.Async:
// the upstream, which writes the request to its server) or has Handle
// answer it in a goroutine (a store that cannot start calls), and goes
// back to its wait; the answer is written back raw by whoever has it. A
// distcache upstream's connection is read by the same loop
// (Options.Poll). Each local connection is served one request at a time,
// in order: the next request is read only after the previous answer is
// written, so a client may pipeline and answers never interleave (E-4),
// and a slow call holds up only its own connection. A request the
// Handler answers by closing (an ADD shorter than 8 bytes, an unknown
// operation, a malformed frame) closes that one local connection; the
// others, and the store, never see it.
package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
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
	// Poll, when set, is given the event loop of Serve while it runs,
	// and nil when it ends: an upstream.Upstream, so that the loop reads
	// the server's answers itself.
	Poll Pollable
	// NearMap, when set, is handed (read-only) to each client on a unix
	// socket that GETs proto.NearMapID (goimpl/nearmap).
	NearMap *nearmap.Map
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
	h     Handler
	idle  time.Duration
	log   accept.Logger
	set   accept.Set
	m     *metrics.Registry
	send  HandOff // set by HandOver; read once set.HandingOff()
	poll  Pollable
	nmap  *nearmap.Map
	conns atomic.Int32 // local connections served (MaxClients)

	mu      sync.Mutex
	loop    *aLoop     // the loop of the last Serve, while it runs
	adopted []adoption // given to Adopt before a loop runs
}

// HandOff passes a local connection to the process that replaces this one
// with the request bytes read but not yet answered (out, the answers not
// yet written, is always empty here: an answer is written before the next
// read, and a connection whose answer waits for room in its socket is
// passed on once it is written); handover.Sender.Send is one.
type HandOff func(nc net.Conn, out, in []byte) error

// New returns a Proxy; Serve runs it.
func New(o Options) *Proxy {
	if o.Log == nil {
		o.Log = new(accept.RateLog)
	}
	p := &Proxy{h: o.Handler, idle: o.Idle, log: o.Log, m: o.Metrics, poll: o.Poll, nmap: o.NearMap}
	p.set = accept.Set{Max: o.MaxClients, Log: o.Log}
	return p
}

// refuse reports a connection refused at MaxClients.
func (p *Proxy) refuse() {
	p.m.ConnRefused(metrics.RefuseLimit)
	p.log.Printf("Error, rejected new client connection already at maximum (%d)", p.set.Max)
}

// Serve accepts and serves local clients until the listener is closed or
// fails (or Shutdown); the connections it has are served on until they
// end. It returns at once, logged, when it cannot serve the listener
// (no descriptor, no epoll set).
func (p *Proxy) Serve(ln net.Listener) {
	if err := p.serveLoop(ln); err != nil {
		p.log.Printf("Error, cannot serve the local listener: %v", err)
	}
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

// adoption is a connection Adopt was given: its descriptor (a
// duplicate, non-blocking) and the request bytes its predecessor read.
type adoption struct {
	fd int
	in []byte
}

// Adopt serves a local connection the process this one replaces handed
// over (HandOver there), in the loop of the running Serve (or of the
// next one); the request bytes in are read before the connection's own.
// After Shutdown has begun it is closed.
func (p *Proxy) Adopt(nc net.Conn, in []byte) {
	fd, err := connFD(nc)
	nc.Close()
	if err != nil {
		p.log.Printf("Warning, could not take a local client over, closing it: %v", err)
		return
	}
	p.mu.Lock()
	al, closing := p.loop, p.set.Closing()
	switch {
	case closing:
		evloop.Close(fd)
	case al == nil:
		p.adopted = append(p.adopted, adoption{fd, in})
	}
	p.mu.Unlock()
	if testHookAdopt != nil {
		testHookAdopt()
	}
	if al != nil && !closing {
		// Also if Shutdown has begun since: the loop closes it (drain,
		// end).
		al.adopt(adoption{fd, in})
	}
}

// testHookAdopt, set by tests, runs in Adopt once it has decided where
// the connection goes.
var testHookAdopt func()

// connFD returns a non-blocking duplicate of nc's descriptor.
func connFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("the connection has no descriptor")
	}
	return evloop.FD(sc)
}

// Closing reports whether Shutdown has begun.
func (p *Proxy) Closing() bool { return p.set.Closing() }

// Shutdown stops accepting, lets every client finish the request it is
// waiting for, and waits up to wait for them to go.
func (p *Proxy) Shutdown(ln net.Listener, wait time.Duration) { p.set.Shutdown(ln, wait) }

// client is one local connection, served by the loop. Its buffers are
// recycled when the application closes cleanly, since most applications
// connect once per operation.
type client struct {
	p   *Proxy
	io  rawio.Conn // reads and writes fd
	rd  *proto.Reader
	pay []byte // the answer's payload
	out []byte // the answer's encoding
	pre []byte // request bytes a predecessor read and did not answer (Adopt)

	al      *aLoop // nil once the connection has left the loop
	fd      int
	watched bool     // in the loop's epoll set
	nc      net.Conn // the socket as a net.Conn, once it left the loop to be handed over
	// unsent is the part of an answer the socket did not take: the loop
	// writes it when the socket has room (room), and reads no request
	// meanwhile; wdl is when the connection is dropped if it has not.
	unsent []byte
	room   bool
	wdl    time.Time
	as     aConn
}

var clientPool sync.Pool

// newClient returns a client of the loop al's socket fd.
func newClient(p *Proxy, al *aLoop, fd int) *client {
	c, ok := clientPool.Get().(*client)
	if ok {
		c.p = p
	} else {
		c = &client{p: p}
		c.as.c = c
		c.rd = proto.NewReader(c, proto.WantRequests)
	}
	c.al, c.fd = al, fd
	c.io.ResetFD(fd)
	c.as.sc.Done = &c.as
	c.as.sc.Batch = al.batchFn
	return c
}

var errClosing = errors.New("shutting down")

// Read reads the socket for the Reader (after the bytes of Adopt).
func (c *client) Read(b []byte) (int, error) {
	if c.p.set.Closing() {
		return 0, errClosing
	}
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	c.as.edge.Store(false) // this read sees what the edge said
	n, err := c.io.Read(b)
	c.as.full.Store(n == len(b))
	c.p.m.BytesIn(n)
	return n, err
}

// clientWriteTimeout bounds how long an application may leave its answer
// unread (a variable for the tests).
var clientWriteTimeout = 30 * time.Second

// maxPooled is the largest buffer a recycled client keeps.
const maxPooled = 64 << 10

// end closes the connection (why, for the metrics) and recycles it if the
// application closed it cleanly.
func (c *client) end(why metrics.CloseReason, clean bool) {
	c.p.m.ConnClosed(why)
	if c.al != nil {
		c.al.closeConn(c)
	} else if c.nc != nil {
		c.nc.Close()
	}
	if clean && c.rd.Buffered() == 0 && cap(c.out) <= maxPooled && cap(c.pay) <= maxPooled {
		*c = client{rd: c.rd, out: c.out[:0], pay: c.pay[:0], io: c.io, as: aConn{c: c}}
		clientPool.Put(c)
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

// handOff passes the client to the successor when err is the handover's
// interruption; it reports whether the client is gone (passed, or dropped
// because it could not be: logged).
func (c *client) handOff(err error) bool {
	if !c.p.set.HandingOff() || c.p.send == nil || !errors.Is(err, errClosing) {
		return false
	}
	if c.al != nil && !c.al.toNetConn(c) {
		return true // closed (logged)
	}
	if err := c.p.send(c.nc, nil, append(c.rd.Pending(), c.pre...)); err != nil {
		c.p.log.Printf("Warning, could not hand a local client to the new process, closing it: %v", err)
	}
	return true
}
