// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"net"
	"os"
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
	"github.com/distcache-go/distcache/goimpl/store"
)

// One event loop serves every connection of a listener, young or kept,
// as the original dc_client's select loop does: it reads a request,
// starts the store call and goes back to its wait, and the answer is
// written to the local socket, with a raw write that never waits, by
// whoever has it.
//
// When the Handler can start its store's calls without waiting for them
// (a *store.Handler over a store.Async: the upstream, with or without
// metrics), the upstream writes the request to its server, and the loop
// also reads the upstream connection (Options.Poll: evloop.Poller), so
// that a request costs its reads and writes and the loop's waits, and no
// goroutine is woken; the loop waits raw while events come close
// together (evloop.Loop.RawWaits) and parks in the runtime's poller
// otherwise. Requests the store cannot start (TAKE, the feature probe,
// and every request of a store that cannot start calls: Redis, the
// sealing wrapper) are answered by Handle in a goroutine, and completed
// the same way; the loop then always parks (a raw wait would keep a P
// from those goroutines).
//
// A connection's state says who may touch it: the loop (connIdle), or,
// while its call is in flight, whoever completes the call (connCalling;
// connReadable when the loop saw the socket readable meanwhile). The
// completion writes the answer and gives the connection back: at once
// when nothing came meanwhile, or through the loop's queue (connQueued,
// and the loop's eventfd) when the loop must look at it again (it became
// readable, the answer did not fit in the socket, or the connection is
// to close). An answer that does not fit waits in the loop for room
// (evloop.Loop.WatchWrites), no request of its connection read
// meanwhile, for clientWriteTimeout at most. With Idle the loop looks
// at its connections every Idle/8 and closes those that have waited for
// a request longer than Idle.

// The states of a connection of the loop.
const (
	connIdle     int32 = iota // the loop's: waiting for a request, or being served
	connCalling               // its call is in flight
	connReadable              // in flight, and the loop saw the socket readable
	connQueued                // complete, in the loop's queue
)

// maxTurn bounds the requests of one connection answered in one turn of
// the loop without a store call (a flood of malformed ids), so that the
// others are not held up.
const maxTurn = 16

// starter is a Handler that can start store calls (*store.Handler).
type starter interface {
	Handler
	CanStart() bool
	Start(req *proto.Message, out []byte, c *store.Call) ([]byte, store.Started, error)
	Finish(c *store.Call, out []byte) ([]byte, error)
}

// blocking is the starter of a Handler whose store cannot start calls
// (Redis, the sealing wrapper, a Handler that is not a *store.Handler):
// every request is answered by Handle in a goroutine.
type blocking struct{ Handler }

func (blocking) CanStart() bool { return false }
func (blocking) Start(*proto.Message, []byte, *store.Call) ([]byte, store.Started, error) {
	return nil, store.Blocking, nil
}
func (blocking) Finish(*store.Call, []byte) ([]byte, error) { return nil, errNoCall }

var errNoCall = errors.New("no call was started")

// starterOf is the starter that serves h's requests in the loop.
func starterOf(h Handler) starter {
	if s, ok := h.(starter); ok && s.CanStart() {
		return s
	}
	return blocking{h}
}

// aConn is a connection's part for the loop: its Handler there, its
// Completion, and the state of its call.
type aConn struct {
	c     *client
	state atomic.Int32
	sc    store.Call
	uid   uint32
	op    proto.Op
	// edge: the socket became readable since the loop last read it. A
	// request served from what the reader had buffered leaves the
	// socket unread, so a completion that finds edge set gives the
	// connection back through the queue, not to the next edge, which
	// has come already.
	edge atomic.Bool
	// full: the last read filled its buffer, so the socket may hold
	// more; hup: the loop saw the peer's shutdown (EPOLLRDHUP), which
	// the read that took the last requests did not report. Either way a
	// completion gives the connection back through the queue, so that
	// the loop reads on: no new edge would come for what is there.
	full atomic.Bool
	hup  atomic.Bool
	// since is when the connection began to wait for its next request
	// (monotonic nanoseconds, with Idle only).
	since atomic.Int64
	// Set by the completion for the loop (connQueued).
	werr   error // the answer's write failed
	closer error // the Handler closes the connection (ErrClose)
	turns  int   // requests answered at once in this turn
	queued bool  // in the loop's queue for its own reasons (maxTurn)
	next   *client
	prev   *client
	inList bool
}

// aLoop is the loop of one Serve.
type aLoop struct {
	p  *Proxy
	h  starter
	l  *evloop.Loop
	ln net.Listener
	// A TCP listener gets evloop.TCPOptions once, and Linux copies them
	// to every connection accepted from it; those queued before were
	// made without them, so each accepted gets them too until the queue
	// is first found empty (optsUntilEmpty), as in dc_server's loop.
	optsUntilEmpty bool

	stopped, done func()
	lfd           int // the listener's duplicate; -1 once accepting has stopped
	acceptMore    bool
	pause         time.Time // accepting resumes (after an accept error)
	delay         time.Duration
	lnClosed      atomic.Bool
	stopCh        chan struct{}
	blocking      atomic.Int32 // requests answered by Handle in goroutines
	head          *client      // every connection of the loop
	n             int
	rooms         int       // connections waiting for room for their answer
	sweep         time.Time // when the loop next looks for idle connections and stalled answers

	// onLoop is set while the loop reads a polled socket, whose
	// completions then need not wake it: it looks at its queue next.
	onLoop atomic.Bool

	// What the calls started in the current round left to its end
	// (store.Call.Batch: batch, the loop's own).
	atEnd   []func()
	batchFn func(func())

	mu      sync.Mutex
	queue   []*client
	spare   []*client
	attach  []attachReq
	adopts  []adoption
	polled  map[any]evloop.Polled
	unix    bool // a unix listener's: descriptors can be handed over
	ended   bool
	started bool // Options.Poll was given the loop
}

type attachReq struct {
	owner any
	rc    syscall.RawConn
	h     evloop.Polled
}

// serveLoop serves ln from a loop until accepting stops; an error when
// it cannot, and nothing is started.
func (p *Proxy) serveLoop(ln net.Listener) error {
	h := starterOf(p.h)
	lfd, err := evloop.ListenerFD(ln)
	if err != nil {
		return err
	}
	l, err := evloop.New()
	if err != nil {
		evloop.Close(lfd)
		return err
	}
	al := &aLoop{p: p, h: h, l: l, ln: ln, lfd: lfd, stopCh: make(chan struct{}), polled: make(map[any]evloop.Polled)}
	al.batchFn = al.batch
	switch nw := ln.Addr().Network(); nw {
	case "tcp", "tcp4", "tcp6":
		evloop.TCPOptions(lfd)
		al.optsUntilEmpty = true
	case "unix":
		al.unix = true
	}
	var ok bool
	if al.stopped, al.done, ok = p.set.AddLoop(l.Wake); !ok {
		l.Close()
		evloop.Close(lfd)
		return errClosing
	}
	l.Lend(lfd, (*aListener)(al))
	if err := l.Arm(lfd); err != nil {
		l.Close()
		evloop.Close(lfd)
		al.done()
		return err
	}
	// The loop accepts on lfd from here on; ln's own descriptor in the
	// runtime's poller would wake a thread at every connection.
	evloop.LeavePoller(ln)
	// The loop waits raw only when it reads the store's answers itself
	// (Poll: the upstream), and on one P only while no goroutine waits
	// for a socket: no request answered by one, every upstream
	// connection read by the loop. A store whose answers come from
	// goroutines (Redis's client, or Handle's when the store cannot start
	// calls) needs them to run as soon as the answer is in: a raw wait
	// would leave them one P fewer, on one P none until its tick.
	if h.CanStart() && p.poll != nil {
		l.RawWaitsWhile(func() bool {
			return al.blocking.Load() == 0 && (p.poll == nil || p.poll.Polled())
		})
	}
	p.mu.Lock()
	p.loop = al
	al.adopts, p.adopted = p.adopted, nil
	p.mu.Unlock()
	if p.poll != nil {
		al.started = true
		p.poll.Poll(al)
	}
	go al.run()
	evloop.WatchClosed(ln, al.stopCh, func() {
		al.lnClosed.Store(true)
		al.l.Wake()
	}, func() {
		p.log.Printf("Warning, the listening socket had been made blocking; it is non-blocking again")
	})
	return nil
}

// Attach implements evloop.Poller.
func (al *aLoop) Attach(owner any, rc syscall.RawConn, h evloop.Polled) bool {
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.ended {
		return false
	}
	al.attach = append(al.attach, attachReq{owner, rc, h})
	al.l.Wake()
	return true
}

// adopt has the loop serve a connection Adopt was given.
func (al *aLoop) adopt(a adoption) {
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.ended {
		evloop.Close(a.fd)
		return
	}
	al.adopts = append(al.adopts, a)
	al.l.Wake()
}

// polledReady is a polled socket's Handler in the loop.
type polledReady struct {
	al *aLoop
	h  evloop.Polled
}

func (r *polledReady) Ready() {
	r.al.l.Passive() // the answers to what the loop wrote
	r.al.onLoop.Store(true)
	r.h.Ready()
	r.al.onLoop.Store(false)
	r.al.drain()
}

// aListener is the listener's Handler.
type aListener aLoop

func (h *aListener) Ready() { (*aLoop)(h).accept() }

func (al *aLoop) run() {
	p := al.p
	defer al.end()
	al.drain() // what Adopt was given before
	closing := false
	for {
		lnClosed := al.lnClosed.Load()
		if p.set.Stopping() || lnClosed {
			al.stopAccepting()
		}
		if p.set.Closing() {
			// Each connection's next read says so: it ends, or is
			// handed over; those in flight do once their call
			// completes, through the queue, or here, at the next turn,
			// when the completion saw Closing only after giving the
			// connection back idle.
			closing = true
			al.each(al.serve)
		}
		// After its listener was closed by anyone (Serve has
		// returned, and no Shutdown may come) the loop serves the
		// connections it has until they end.
		if (closing || lnClosed) && al.n == 0 {
			al.endRound()
			return
		}
		var err error
		if al.acceptMore {
			err = al.l.Poll()
			al.accept()
		} else {
			err = al.l.Wait(al.deadline())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			al.resume()
		}
		al.drain()
		if !al.sweep.IsZero() {
			al.sweepConns()
		}
		al.endRound()
	}
}

// batch is the Batch of the calls the loop starts: f runs at the end of
// the loop's round (endRound), after every request of the wake-up has
// been started. On the loop's goroutine.
func (al *aLoop) batch(f func()) { al.atEnd = append(al.atEnd, f) }

// endRound runs what the round's calls left to its end (batch): the
// upstream's write of the requests they started.
func (al *aLoop) endRound() {
	for i := 0; i < len(al.atEnd); i++ {
		al.atEnd[i]()
		al.atEnd[i] = nil
	}
	al.atEnd = al.atEnd[:0]
}

// deadline is when the loop's wait ends: accepting resumes after an
// accept error's pause, or the loop looks at its connections (zero:
// none).
func (al *aLoop) deadline() time.Time {
	dl := al.pause
	if al.sweep.IsZero() && (al.p.idle > 0 && al.n > 0 || al.rooms > 0) {
		al.sweep = time.Now().Add(al.sweepEvery())
	}
	if !al.sweep.IsZero() && (dl.IsZero() || al.sweep.Before(dl)) {
		dl = al.sweep
	}
	return dl
}

// sweepEvery is how often the loop looks for idle connections and
// stalled answers: an eighth of Idle and of clientWriteTimeout, within
// 5 ms and a second.
func (al *aLoop) sweepEvery() time.Duration {
	d := time.Second
	if al.p.idle > 0 {
		d = min(d, al.p.idle/8)
	}
	if al.rooms > 0 {
		d = min(d, clientWriteTimeout/8)
	}
	return max(d, 5*time.Millisecond)
}

// sweepConns closes, once the sweep is due, the connections that have
// waited longer than Idle for a request, and those whose answer has
// waited longer than clientWriteTimeout for room.
func (al *aLoop) sweepConns() {
	now := time.Now()
	if now.Before(al.sweep) {
		return
	}
	al.sweep = time.Time{}
	idle := al.p.idle
	since := int64(time.Since(epoch) - idle)
	for c := al.head; c != nil; {
		next := c.as.next
		a := &c.as
		switch {
		case a.state.Load() != connIdle || a.queued:
		case c.room:
			if now.After(c.wdl) {
				c.end(metrics.CloseResponseTimeout, false)
			}
		case idle > 0 && a.since.Load() < since:
			why := metrics.CloseIdle
			if c.rd.Buffered() > 0 || len(c.rd.Pending()) > 0 || len(c.pre) > 0 {
				why = metrics.ClosePartialRequest
			}
			c.end(why, false)
		}
		c = next
	}
}

// epoch is the origin of aConn.since.
var epoch = time.Now()

// waiting notes that c begins to wait for its next request (Idle).
func (c *client) waiting() {
	if c.p.idle > 0 {
		c.as.since.Store(int64(time.Since(epoch)))
	}
}

// each calls f for every connection of the loop that is not in flight.
func (al *aLoop) each(f func(*client)) {
	for c := al.head; c != nil; {
		next := c.as.next
		if c.as.state.Load() == connIdle && !c.as.queued {
			f(c)
		}
		c = next
	}
}

// end stops the loop: the polled sockets are read by their owners again.
func (al *aLoop) end() {
	al.stopAccepting()
	if al.started {
		al.p.poll.Poll(nil)
	}
	p := al.p
	p.mu.Lock()
	if p.loop == al {
		p.loop = nil
	}
	p.mu.Unlock()
	al.mu.Lock()
	al.ended = true
	polled, reqs, adopts := al.polled, al.attach, al.adopts
	al.polled, al.attach, al.adopts = nil, nil, nil
	al.mu.Unlock()
	al.l.Close()
	for _, h := range polled {
		h.Unpolled()
	}
	for _, r := range reqs {
		r.h.Unpolled()
	}
	for _, a := range adopts {
		evloop.Close(a.fd)
	}
	al.done()
}

// drain serves the connections whose calls completed and those Adopt
// was given, and adds the sockets Attach was given.
func (al *aLoop) drain() {
	al.mu.Lock()
	q, reqs, adopts := al.queue, al.attach, al.adopts
	al.queue, al.spare = al.spare[:0], nil
	al.attach, al.adopts = nil, nil
	al.mu.Unlock()
	for _, r := range reqs {
		pr := &polledReady{al, r.h}
		var werr error
		err := r.rc.Control(func(fd uintptr) { werr = al.l.Watch(int(fd), pr) })
		if err != nil || werr != nil {
			r.h.Unpolled()
			continue
		}
		al.polled[r.owner] = r.h // a new connection of the owner replaces its last
	}
	for i, c := range q {
		q[i] = nil
		al.completed(c)
	}
	al.mu.Lock()
	if al.spare == nil {
		al.spare = q[:0]
	}
	al.mu.Unlock()
	for _, a := range adopts {
		if al.p.set.Closing() {
			evloop.Close(a.fd)
			continue
		}
		al.add(a.fd, a.in)
	}
}

// completed serves a connection from the queue.
func (al *aLoop) completed(c *client) {
	a := &c.as
	a.state.Store(connIdle)
	a.queued = false
	switch {
	case a.closer != nil:
		c.p.log.Printf("Warning, closing local client: %v", a.closer)
		a.closer = nil
		c.end(metrics.CloseCorrupt, false)
	case a.werr != nil:
		err := a.werr
		a.werr = nil
		c.end(metrics.WriteCloseReason(err), false)
	case len(c.unsent) > 0:
		al.waitRoom(c)
	default:
		al.serve(c)
	}
}

// post gives a connection to the loop (from any goroutine).
func (al *aLoop) post(c *client) {
	al.mu.Lock()
	al.queue = append(al.queue, c)
	al.mu.Unlock()
	if !al.onLoop.Load() {
		al.l.Wake()
	}
}

// stopAccepting closes the listener's duplicate and says the loop
// accepts no more. An accept error's pause ends with it: it is the
// loop's deadline, which would otherwise stay behind, passed, at every
// Wait.
func (al *aLoop) stopAccepting() {
	if al.lfd >= 0 {
		al.l.Disarm(al.lfd)
		evloop.Close(al.lfd)
		al.lfd = -1
		al.pause = time.Time{}
		close(al.stopCh)
		al.stopped()
	}
}

// resume accepts again after an accept error's pause.
func (al *aLoop) resume() {
	if al.lfd < 0 || al.pause.IsZero() || time.Now().Before(al.pause) {
		return
	}
	if err := al.l.Arm(al.lfd); err != nil {
		al.p.log.Printf("Warning, accept failed: %v", err)
		al.delay = accept.Backoff(al.delay)
		al.pause = time.Now().Add(al.delay)
		return
	}
	al.pause = time.Time{}
}

// accept takes the connections waiting on the listener (a batch per
// turn) and serves each at once.
func (al *aLoop) accept() {
	p := al.p
	al.acceptMore = false
	for i := 0; i < 16; i++ {
		if al.lfd < 0 || !al.pause.IsZero() || p.set.Stopping() {
			return
		}
		fd, err := evloop.Accept(al.lfd)
		if err == syscall.EAGAIN {
			al.optsUntilEmpty = false
			return
		}
		if err != nil {
			// Back off instead of spinning (E-25).
			p.log.Printf("Warning, accept failed: %v", err)
			al.delay = accept.Backoff(al.delay)
			al.pause = time.Now().Add(al.delay)
			al.l.Disarm(al.lfd)
			return
		}
		al.delay = 0
		if al.optsUntilEmpty {
			evloop.TCPOptions(fd)
		}
		if p.set.Max > 0 && int(p.conns.Load()) >= p.set.Max {
			p.refuse()
			evloop.Close(fd)
			continue
		}
		al.add(fd, nil)
	}
	al.acceptMore = true
}

// add serves a new connection of the loop (accepted, or adopted with the
// request bytes pre).
func (al *aLoop) add(fd int, pre []byte) {
	p := al.p
	c := newClient(p, al, fd)
	if err := al.l.Watch(fd, &c.as); err != nil {
		p.log.Printf("Warning, local client: %v", err)
		evloop.Close(fd)
		c.al, c.fd = nil, -1
		return
	}
	c.watched = true
	c.pre = pre
	p.conns.Add(1)
	al.link(c)
	p.m.ConnAccepted()
	c.waiting()
	al.serve(c) // the request may be there already
}

func (al *aLoop) link(c *client) {
	a := &c.as
	a.prev, a.next, a.inList = nil, al.head, true
	if al.head != nil {
		al.head.as.prev = c
	}
	al.head = c
	al.n++
}

func (al *aLoop) unlink(c *client) {
	a := &c.as
	if !a.inList {
		return
	}
	a.inList = false
	if a.prev != nil {
		a.prev.as.next = a.next
	} else {
		al.head = a.next
	}
	if a.next != nil {
		a.next.as.prev = a.prev
	}
	a.prev, a.next = nil, nil
	al.n--
}

// Ready is the loop's Handler of a connection: its socket is readable
// (or, while its answer waits for room, writable).
func (a *aConn) Ready() {
	c := a.c
	a.edge.Store(true)
	if c.al.l.HungUp() {
		a.hup.Store(true)
	}
	switch a.state.Load() {
	case connIdle:
		switch {
		case c.room:
			c.al.flush(c)
		case !a.queued:
			c.al.serve(c)
		}
	case connCalling:
		if !a.state.CompareAndSwap(connCalling, connReadable) && a.state.Load() == connIdle {
			c.al.serve(c) // completed meanwhile
		}
	}
}

// serve reads and answers c's requests until it has to wait for the next
// one, for its call, or for room for an answer (on the loop's goroutine,
// c connIdle).
func (al *aLoop) serve(c *client) {
	a := &c.as
	a.turns = 0
	for !c.room {
		m, err := c.rd.ReadMessage()
		if err == rawio.ErrWouldBlock {
			return // the loop watches it
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		a.uid, a.op = m.UID, m.Op
		if m.Op == proto.OpGet && al.unix && al.p.nmap != nil && proto.IsNearMapID(m.Payload) {
			if !c.answerMap() || al.turnOver(c) {
				return
			}
			continue
		}
		a.state.Store(connCalling)
		pay, how, err := al.h.Start(m, c.pay[:0], &a.sc)
		switch how {
		case store.Answered:
			a.state.Store(connIdle)
			if err != nil {
				c.p.log.Printf("Warning, closing local client: %v", err)
				c.end(metrics.CloseCorrupt, false)
				return
			}
			c.pay = pay
			if !c.answer(pay) || al.turnOver(c) {
				return
			}
			continue
		case store.Blocking:
			al.blocking.Add(1)
			go c.handleBlocking(m)
			return
		}
		if a.state.Load() != connIdle {
			return // in flight, or queued
		}
	}
}

// turnOver counts an answer of c's turn: true, c queued for a turn of
// its own later, once it had maxTurn.
func (al *aLoop) turnOver(c *client) bool {
	a := &c.as
	if a.turns++; a.turns < maxTurn {
		return false
	}
	a.queued = true
	al.post(c)
	return true
}

// answer writes the answer payload pay to a connection of the loop (on
// the loop's goroutine); false when it has to wait for room, or has
// ended.
func (c *client) answer(pay []byte) bool {
	a := &c.as
	c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: a.uid, Op: a.op, Payload: pay})
	n, err := c.io.Write(c.out)
	c.p.m.BytesOut(n)
	switch {
	case err == rawio.ErrWouldBlock:
		c.unsent = c.out[n:]
		c.al.waitRoom(c)
		return false
	case err != nil:
		c.end(metrics.WriteCloseReason(err), false)
		return false
	}
	c.waiting()
	return true
}

// answerMap answers a GET of proto.NearMapID with the near map's
// read-only descriptor (on the loop's goroutine, c connIdle); false as
// answer's. An answer the socket cannot take at once goes without the
// descriptor, as a miss would; so does one after the map closed.
func (c *client) answerMap() bool {
	a := &c.as
	c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: a.uid, Op: a.op, Payload: []byte(nearmap.ProbeAnswer)})
	n, err := c.p.nmap.SendTo(c.fd, c.out)
	switch {
	case err == syscall.EAGAIN || err == syscall.EBADF:
		return c.answer([]byte{proto.ResultNotOK})
	case err != nil:
		c.end(metrics.WriteCloseReason(err), false)
		return false
	}
	c.p.m.BytesOut(n)
	if n < len(c.out) {
		c.unsent = c.out[n:]
		c.al.waitRoom(c)
		return false
	}
	c.waiting()
	return true
}

// waitRoom has c's answer, whose rest is c.unsent, wait for room in the
// socket (on the loop's goroutine, c connIdle).
func (al *aLoop) waitRoom(c *client) {
	if err := al.l.WatchWrites(c.fd, true); err != nil {
		c.p.log.Printf("Warning, local client: %v", err)
		c.end(metrics.CloseError, false)
		return
	}
	c.room = true
	c.wdl = time.Now().Add(clientWriteTimeout)
	al.rooms++
}

// flush writes what c's answer has left when its socket may have room,
// and serves c on once it is written.
func (al *aLoop) flush(c *client) {
	n, err := c.io.Write(c.unsent)
	c.p.m.BytesOut(n)
	switch {
	case err == rawio.ErrWouldBlock:
		c.unsent = c.unsent[n:]
		return
	case err != nil:
		c.end(metrics.WriteCloseReason(err), false)
		return
	}
	c.unsent = nil
	al.roomDone(c)
	if err := al.l.WatchWrites(c.fd, false); err != nil {
		c.p.log.Printf("Warning, local client: %v", err)
		c.end(metrics.CloseError, false)
		return
	}
	c.waiting()
	al.serve(c)
}

// roomDone says c's answer no longer waits for room.
func (al *aLoop) roomDone(c *client) {
	if c.room {
		c.room = false
		c.wdl = time.Time{}
		al.rooms--
	}
}

// handleBlocking answers a request the store cannot start, in a goroutine
// of its own (the loop does not touch c meanwhile).
func (c *client) handleBlocking(m *proto.Message) {
	pay, err := c.p.h.Handle(context.Background(), m, c.pay[:0])
	c.al.blocking.Add(-1)
	c.completeWith(pay, err)
}

// Complete implements store.Completion: c's call is complete.
func (a *aConn) Complete(sc *store.Call) {
	c := a.c
	pay, err := c.al.h.Finish(sc, c.pay[:0])
	c.completeWith(pay, err)
}

// completeWith writes the answer of c's call, from whoever completed it,
// and gives c back to the loop.
func (c *client) completeWith(pay []byte, err error) {
	a, al := &c.as, c.al
	if pay != nil {
		c.pay = pay
	}
	if err != nil {
		a.closer = err
	} else {
		c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: a.uid, Op: a.op, Payload: pay})
		n, err := c.io.Write(c.out)
		c.p.m.BytesOut(n)
		switch {
		case err == rawio.ErrWouldBlock:
			c.unsent = c.out[n:]
		case err != nil:
			a.werr = err
		default:
			c.waiting()
			if c.rd.Buffered() == 0 && !a.edge.Load() && !a.full.Load() && !a.hup.Load() && !c.p.set.Closing() {
				if h := testHookIdle.Load(); h != nil {
					(*h)()
				}
				px := c.p // c is the loop's once idle: not to be touched
				if a.state.CompareAndSwap(connCalling, connIdle) {
					// The loop sees its next request come; a Shutdown
					// begun since the check above has the loop look at
					// it again (run serves the idle ones at every turn
					// while closing).
					if px.set.Closing() {
						al.l.Wake()
					}
					return
				}
			}
		}
	}
	a.state.Store(connQueued)
	al.post(c)
}

// testHookIdle, set by tests, runs in a completion that is about to give
// its connection back to the loop idle (atomic: completions of an earlier
// test may still run).
var testHookIdle atomic.Pointer[func()]

// closeConn closes a connection of the loop.
func (al *aLoop) closeConn(c *client) {
	al.unlink(c)
	al.roomDone(c)
	if c.watched {
		al.l.Forget(c.fd)
		c.watched = false
	}
	evloop.Close(c.fd)
	al.p.conns.Add(-1)
	c.al, c.fd = nil, -1
	al.l.YieldBeforeWait() // its client may be about to connect again
}

// toNetConn takes c out of the loop and makes its socket a net.Conn
// (c.nc), to be handed over; false when that fails (logged, the socket
// closed).
func (al *aLoop) toNetConn(c *client) bool {
	al.unlink(c)
	al.roomDone(c)
	if c.watched {
		al.l.Unwatch(c.fd)
		c.watched = false
	}
	al.p.conns.Add(-1)
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate
	f.Close()
	c.al, c.fd = nil, -1
	if err != nil {
		al.p.log.Printf("Warning, closing local client: %v", err)
		return false
	}
	c.nc = nc
	return true
}
