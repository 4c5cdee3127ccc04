// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
)

// conn is one client connection. Its buffers are recycled through
// connPool when the client closes cleanly, so that clients opening a
// connection per operation (Apache through dc_client) cost no large
// allocations.
type conn struct {
	s         *Server
	nc        net.Conn   // nil while an event loop serves the connection
	io        rawio.Conn // reads and writes nc (or fd)
	rd        *proto.Reader
	out       []byte // encoded responses not yet written
	payload   []byte // response payload scratch
	reads     int    // Read calls during the current ReadMessage
	msgStart  time.Time
	flushTime time.Time // when flush last began
	timedOut  string
	rdl, wdl  time.Time // deadlines currently set on nc
	head      []byte    // the first bytes read (a TLS client on a plaintext listener?)
	pre       []byte    // request bytes a predecessor read and did not answer (Adopt)
	cs        connState // what the connection limits see (limits.go)

	// While an event loop serves the connection (loop.go): its socket,
	// its place in the loop's list, and why the loop runs it.
	loop       *srvLoop
	fd         int
	prev, next *conn
	where      int8 // inList, inRunq
	watched    bool // in the loop's epoll set
	kept       bool // counted in its loop's kept (srvLoop.keep)
	answered   int  // requests answered while in a loop
	expired    bool // its idle time is up
	idleWait   bool // the last read would wait, between two requests
	drained    bool // the last read emptied the socket (watched, so the loop hears of more)
	hup        bool // the loop reported the peer's shutdown (for this turn, or while it was queued for it)
	budget     int  // requests it may still answer in this turn
	// Served by a goroutine because its request came in pieces: it goes
	// back to a loop once answered (toLoop).
	fromLoop bool
	// In a loop, when it stops waiting for the rest of its request
	// (waitPartial); zero between requests.
	partialUntil time.Time
}

var connPool sync.Pool

func newConn(s *Server, nc net.Conn) *conn {
	if c, ok := connPool.Get().(*conn); ok {
		c.s, c.nc = s, nc
		return c
	}
	c := &conn{s: s, nc: nc}
	c.rd = proto.NewReader(c, proto.WantRequests)
	return c
}

// recycle returns the connection's buffers to the pool. Only for a reader
// that ended at a clean end of stream (nothing buffered, no partial
// message); oversized buffers are left to the garbage collector.
func (c *conn) recycle() {
	if c.rd.Buffered() != 0 || cap(c.out) > outBase || cap(c.payload) > payloadBase {
		return
	}
	*c = conn{rd: c.rd, out: c.out[:0], payload: c.payload[:0], head: c.head[:0], io: c.io}
	connPool.Put(c)
}

var errClosing = errors.New("server shutting down")

// errToLoop is what Read returns, to run, for a connection that may go
// back to an event loop now (toLoop).
var errToLoop = errors.New("back to an event loop")

// Read is what the proto.Reader reads through. It writes the responses
// queued so far before every read that may block, so pipelined requests
// get one batched write and a client never waits for an answer that sits
// in our buffer. It also arms the idle and partial-request deadlines.
func (c *conn) Read(p []byte) (int, error) {
	flushed := false
	if len(c.out) > 0 && !c.pending() {
		if err := c.flush(); err != nil {
			return 0, err
		}
		flushed = c.loop != nil // a loop's writes never wait
	}
	s := c.s
	var dl time.Time
	idle := c.reads == 0 && c.rd.Buffered() == 0
	if idle && c.fromLoop && len(c.out) == 0 && len(c.pre) == 0 && !s.set.Closing() {
		return 0, errToLoop
	}
	if idle {
		c.msgStart = time.Time{}
		c.trim()
		// The clock is read only when needed: not for a new connection's
		// first read without Idle (its state keeps the accept's time),
		// and not right after a loop's write, whose time serves.
		if st := c.cs.state.Load(); st != stateNew || s.o.Idle > 0 {
			now := c.flushTime
			if !flushed {
				now = c.clock()
			}
			if st != stateNew {
				c.cs.set(stateIdle, now)
			}
			if s.o.Idle > 0 {
				dl = now.Add(s.o.Idle)
				c.timedOut = "idle"
			}
		}
	} else {
		// Partial again after each piece read (busy meanwhile), since
		// the request's first bytes.
		if c.msgStart.IsZero() {
			c.msgStart = time.Now()
		}
		c.cs.set(statePartial, c.msgStart)
		dl = c.msgStart.Add(s.o.FrameTimeout)
		c.timedOut = "partial request"
	}
	c.reads++
	if !dl.Equal(c.rdl) {
		c.rdl = dl
		if c.loop == nil {
			c.nc.SetReadDeadline(dl)
		} // else the loop keeps the time
	}
	if s.set.Closing() {
		return 0, errClosing
	}
	if c.expired {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		c.cs.state.Store(stateBusy)
		return n, nil
	}
	var n int
	var err error
	if idle && c.drained && c.loop != nil {
		// A loop watches the socket, and the last read emptied it: the
		// loop hears of what comes next (edge-triggered), no read needed
		// to learn that nothing has.
		err = rawio.ErrWouldBlock
	} else {
		n, err = c.io.Read(p)
	}
	if err == rawio.ErrWouldBlock {
		// In an event loop: it calls again when there is more.
		if idle {
			c.reads = 0
		}
		c.idleWait = idle
		return 0, err
	}
	// A short read took all there was (stream sockets, TCP or unix),
	// but for the end when the peer has shut down its side.
	c.drained = c.watched && n < len(p) && !c.hup
	c.cs.state.Store(stateBusy)
	if len(c.head) < 3 {
		c.head = append(c.head, p[:min(n, 3-len(c.head))]...)
	}
	s.m.BytesIn(n)
	return n, err
}

// pending reports whether the next read will not wait: on TLS, a whole
// record (most often the next pipelined request) has already arrived, so
// the answers can wait to go out together, as they do on plaintext.
func (c *conn) pending() bool {
	p, ok := c.nc.(interface{ Pending() bool })
	return ok && p.Pending()
}

// flush writes the queued responses. A client must take its answers
// within the frame timeout: the write deadline is first set when a write
// has to wait (armWrite; on a plain socket most connections never do),
// and from then on renewed only when less than half of it is left, which
// keeps the timer work off the common path.
func (c *conn) flush() error {
	if c.handingOff() {
		return errClosing // the successor writes them
	}
	now := c.clock()
	c.flushTime = now
	if !c.wdl.IsZero() && c.wdl.Sub(now) < c.s.o.FrameTimeout/2 {
		c.wdl = now.Add(c.s.o.FrameTimeout)
		c.nc.SetWriteDeadline(c.wdl)
	}
	c.cs.set(stateWriting, now)
	n, err := c.io.Write(c.out)
	c.cs.state.Store(stateBusy)
	c.s.m.BytesOut(n)
	if err == rawio.ErrWouldBlock {
		// In an event loop: the rest goes from a goroutine of its own.
		c.out = c.out[:copy(c.out, c.out[n:])]
		return err
	}
	if err != nil && c.handingOff() {
		// Interrupted for the handover: the successor writes the rest.
		c.out = c.out[:copy(c.out, c.out[n:])]
		return errClosing
	}
	c.out = c.out[:0]
	if err != nil {
		c.timedOut = "response not taken"
	}
	return err
}

// clock is the time for the connection's state and deadlines: its loop's
// (srvLoop.clock) while a loop serves it.
func (c *conn) clock() time.Time {
	if c.loop != nil {
		return c.loop.clock()
	}
	return time.Now()
}

// armWrite sets the write deadline before a write waits for the first
// time (rawio.Conn.WriteWait).
func (c *conn) armWrite() {
	if !c.wdl.IsZero() {
		return
	}
	c.wdl = time.Now().Add(c.s.o.FrameTimeout)
	c.nc.SetWriteDeadline(c.wdl)
	if c.handingOff() {
		// The handover may have interrupted writes just before: so is
		// this one.
		c.nc.SetWriteDeadline(time.Unix(1, 0))
	}
}

// serve serves the connection in this goroutine until it ends.
func (c *conn) serve() {
	c.start()
	c.run()
}

// start is where serving a new connection begins.
func (c *conn) start() {
	c.s.m.ConnAccepted()
	if c.loop != nil {
		c.io.ResetFD(c.fd)
		return
	}
	c.io.Reset(c.nc)
	if c.io.WriteWait == nil {
		c.io.WriteWait = c.armWrite // kept with c in connPool
	}
}

// endCorrupt ends a connection whose request is answered by closing it:
// the answers owed to its earlier requests are written first (by a
// goroutine when a loop serves it), and true says the conn is done with.
func (c *conn) endCorrupt() bool {
	if c.loop != nil && len(c.out) > 0 && c.finishElsewhere(nil, metrics.CloseCorrupt) {
		return true
	}
	if len(c.out) > 0 {
		c.flush()
	}
	c.end(metrics.CloseCorrupt, false)
	return true
}

// run reads and answers requests until the connection ends (true) or, in
// an event loop, until a read or write would wait or the turn's budget is
// spent (false; the loop says what next).
func (c *conn) run() (ended bool) {
	s := c.s
	for {
		m, err := c.rd.ReadMessage()
		if err == rawio.ErrWouldBlock {
			return false
		}
		if err == errToLoop {
			if c.toLoop() {
				return true // the loop's from now on
			}
			c.fromLoop = false // it stays here
			continue
		}
		if err != nil && c.handOff(err) {
			c.end(metrics.CloseShutdown, false)
			return true
		}
		if err != nil {
			clean := err == io.EOF && len(c.out) == 0
			why := c.closeReason(err)
			if c.loop != nil && len(c.out) > 0 && c.finishElsewhere(err, why) {
				return true
			}
			if c.handOffOwed(err) {
				c.end(metrics.CloseShutdown, false)
				return true
			}
			c.report(err)
			c.end(why, clean)
			return true
		}
		c.reads, c.msgStart = 0, time.Time{} // the next message's time starts with its first bytes
		c.partialUntil = time.Time{}
		if m.Op == proto.OpSubscribe && s.hub != nil && !m.Response {
			return c.subscribe(m)
		}
		if m.Op == proto.OpGet && s.nm != nil && !m.Response && len(c.out) == 0 && proto.IsNearMapID(m.Payload) {
			if !c.answerMap(m) {
				return true
			}
			if c.loop != nil {
				c.answered++
				if c.budget--; c.budget <= 0 {
					return false
				}
			}
			continue
		}
		payload, err := s.handle(m, c.payload[:0])
		if payload != nil {
			c.payload = payload
		}
		if err != nil {
			s.log.Printf("Warning, closing connection from %s: %v", c.peer(), err)
			return c.endCorrupt()
		}
		c.out, _ = proto.AppendMessage(c.out, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: payload})
		s.ops.Add(1)
		c.account()
		if len(c.out) >= outBase {
			if err := c.flush(); err != nil {
				if err == rawio.ErrWouldBlock {
					return false
				}
				if c.handOff(err) {
					c.end(metrics.CloseShutdown, false)
					return true
				}
				why := c.closeReason(err)
				c.report(err)
				c.end(why, false)
				return true
			}
		}
		if c.loop != nil {
			c.answered++
			if c.budget--; c.budget <= 0 {
				return false
			}
		}
	}
}

// finishElsewhere writes, for a connection a loop serves, the answers
// owed before it ends (a request answered by closing, a corrupt frame, a
// half-close: E-12, E-38). What the socket does not take at once is
// written from a goroutine of the connection's own, where the write may
// wait (the frame timeout); that goroutine then reports err (nil: nothing
// to report) and ends the connection (true). False: nothing is left to
// write, the caller reports and ends it.
func (c *conn) finishElsewhere(err error, why metrics.CloseReason) bool {
	if c.flush() != rawio.ErrWouldBlock {
		return false
	}
	if c.loop.toNetConn(c, "Warning, closing connection from %s: %v") != nil {
		c.out = c.out[:0] // closed: lost
		return false
	}
	c.s.set.Go(c.nc, func(net.Conn) {
		if c.handOffOwed(err) {
			c.end(metrics.CloseShutdown, false)
			return
		}
		if len(c.out) > 0 {
			c.flush()
		}
		if err != nil {
			c.report(err)
		}
		c.end(why, false)
	})
	return true
}

// handOffOwed writes the answers owed before the reader's error err (the
// end of the stream, a corrupt frame: E-12, E-38), and when a handover
// interrupts that, hands the connection over with them instead (true): the
// successor writes them, then reads what this process did not read (the
// end, or the same corrupt frame) and closes the connection itself. A
// request the Handler answers by closing (err nil) is not handed over:
// the successor would serve on.
func (c *conn) handOffOwed(err error) bool {
	return err != nil && len(c.out) > 0 && c.flush() == errClosing && c.handOff(errClosing)
}

// end closes the connection (why, for the metrics) and recycles its
// buffers if it ended cleanly.
func (c *conn) end(why metrics.CloseReason, clean bool) {
	s := c.s
	s.m.ConnClosed(why)
	// Out of the limits' reach before the descriptor is closed: they
	// shut down a loop's connections by descriptor number (fdSock).
	s.limits.leave(&c.cs)
	if c.loop != nil {
		c.loop.closeConn(c)
	} else if c.nc != nil { // nil: closed by a failed toNetConn
		c.nc.Close()
	}
	c.uncharge()
	if clean {
		c.recycle()
	}
}

// handingOff reports whether the connection is to be passed to a
// successor (Server.HandOver) rather than served or closed.
func (c *conn) handingOff() bool { return c.s.set.HandingOff() && c.s.send != nil }

// handOff passes the connection to the successor when err is the
// handover's interruption, with its unwritten answers and its unanswered
// request bytes; it reports whether the connection is gone (passed, or
// dropped because it could not be: logged).
func (c *conn) handOff(err error) bool {
	if !c.handingOff() || !errors.Is(err, errClosing) && !isTimeout(err) {
		return false
	}
	in := append(c.rd.Pending(), c.pre...)
	if c.loop != nil {
		if err := c.loop.toNetConn(c, "Warning, could not hand the connection from %s to the new process, closing it: %v"); err != nil {
			c.out = c.out[:0]
			return true
		}
	}
	if err := c.s.send(c.nc, c.out, in); err != nil {
		c.s.log.Printf("Warning, could not hand the connection from %s to the new process, closing it: %v", c.peer(), err)
	}
	c.out = c.out[:0]
	return true
}

// closeReason says, for the metrics, why a connection ends with err.
func (c *conn) closeReason(err error) metrics.CloseReason {
	if err == io.EOF && !c.s.set.Closing() {
		return metrics.CloseClient // the common end, without walking error chains
	}
	if c.timedOut == "response not taken" && !errors.Is(err, errClosing) {
		return metrics.WriteCloseReason(err)
	}
	if proto.IsCorrupt(err) && tlsconf.LooksLikeTLS(c.head) {
		return metrics.CloseTLS // a TLS client on a plaintext listener
	}
	return metrics.ReadCloseReason(err, c.s.set.Closing(), c.timedOut == "partial request")
}

// report logs why a connection ends, when that is worth knowing.
func (c *conn) report(err error) {
	if len(c.out) > 0 {
		c.flush() // answers owed before a corrupt frame or a half-close (E-12, E-38)
	}
	switch {
	case err == io.EOF, errors.Is(err, errClosing), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
	case proto.IsCorrupt(err) && tlsconf.LooksLikeTLS(c.head):
		c.s.log.Printf("Warning, refused connection from %s: the client speaks TLS, this listener does not (a dc_client with -tls options needs dc_server -tlscert and -tlskey)", c.peer())
	case proto.IsCorrupt(err):
		c.s.log.Printf("Warning, closing connection from %s: %v", c.peer(), err)
	case err == io.ErrUnexpectedEOF:
		c.s.log.Printf("Warning, connection from %s closed in the middle of a request", c.peer())
	case isTimeout(err):
		if c.timedOut != "idle" && !c.s.set.Closing() {
			c.s.log.Printf("Warning, closing connection from %s: %s timed out", c.peer(), c.timedOut)
		}
	default:
		if !c.s.set.Closing() {
			c.s.log.Printf("Warning, connection from %s: %v", c.peer(), err)
		}
	}
}

// isTimeout reports whether err is a deadline's (its net.Error on the
// heap only when it is called: not on the common paths).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
