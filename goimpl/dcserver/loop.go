// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/metrics"
)

// An event loop (goimpl/evloop) accepts plaintext connections and serves
// them from its own goroutine while they are between requests or answering
// ones that have arrived whole: a client that connects, sends its request
// and waits for the answer costs no goroutine, net.Conn or poller
// registration, and its request is answered right after the accept when it
// is already there. A connection that has to wait in the middle of a
// request, or for room to write its answers, leaves the loop for a
// goroutine of its own (net.Conn, deadlines), and is served from there on
// by the same code (conn.run); one whose request came in pieces comes back
// to a loop once answered (conn.toLoop). So there is one way of serving;
// the loop only decides where a connection waits between two requests.

// loopBudget is how many requests a connection is answered in one turn of
// its loop: a client streaming requests cannot keep the others waiting.
const loopBudget = 32

type srvLoop struct {
	s   *Server
	l   *evloop.Loop
	lfd int // the listener (a duplicate), -1 once accepting has stopped

	stopped, done func() // see accept.Set.AddLoop
	accepted      chan struct{}

	all   []*srvLoop   // the loops of the Serve
	raw   bool         // it waits raw (evloop.Loop.WaitsRaw): kept connections go to such loops
	kept  atomic.Int32 // connections that keep asking, served here
	mu    sync.Mutex
	inbox []*conn // kept connections other loops pass to this one
	shut  bool    // no more in the inbox: the loop is ending

	// Connections waiting in the loop, in the order they began to wait
	// (so the first's idle time ends first), those waiting for the rest of
	// a request (partialGrace), and those with more to do.
	head, tail   *conn
	phead, ptail *conn
	runq         []*conn

	optsUntilEmpty bool      // TCP: set tcpOptions on each accepted until the queue is empty
	unix           bool      // a unix listener's: descriptors can be handed over
	acceptMore     bool      // the listener may have more (edge-triggered)
	acceptPause    time.Time // after an accept error: when to try again
	acceptDelay    time.Duration
	lnClosed       atomic.Bool // the listener was closed (untilClosed): stop accepting

	now time.Time // clock: read once per wake-up, when first needed (zero: not yet)
}

// clock is the time of the loop's current wake-up, read from the system's
// clock the first time it is needed in it: the connections served in one
// wake-up (their admission, each answer's write, the idle time that
// follows) share one reading, which in a virtual machine costs about as
// much as a small request's own work in the loop. What it stamps (the
// limits' states, -idle) counts in seconds; a wake-up's work takes
// microseconds.
func (sl *srvLoop) clock() time.Time {
	if sl.now.IsZero() {
		sl.now = time.Now()
	}
	return sl.now
}

// fdSock is a connection in an event loop as the limits see it: evicting
// shuts the socket down (its loop then reads the end and closes it).
type fdSock int

func (f fdSock) Close() error         { return syscall.Shutdown(int(f), syscall.SHUT_RDWR) }
func (f fdSock) RemoteAddr() net.Addr { return evloop.PeerAddr(int(f)) }

func (c *conn) sock() sock {
	if c.nc == nil {
		return fdSock(c.fd) // -1 once closed by a failed toNetConn
	}
	return c.nc
}

func (c *conn) peer() string { return peer(c.sock()) }

// serveLoops serves ln from event loops until Shutdown: the first accepts
// and serves the connections opened for a request; one that keeps asking
// (answered twice, waiting for more) goes to the loop with the fewest
// such among those that wait raw (fewestKept), so that persistent clients
// spread over the CPUs while the short ones stay with the loop that
// accepted them (handing every connection around costs more than it
// spreads). False when ln cannot be (no
// descriptor), and nothing is started.
func (s *Server) serveLoops(ln net.Listener) bool {
	n := s.o.Loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	lfd, err := evloop.ListenerFD(ln)
	if err != nil {
		return false
	}
	var loops []*srvLoop
	for i := 0; i < n; i++ {
		fd := -1
		if i == 0 {
			fd = lfd
		}
		sl, err := s.newLoop(fd, loops)
		if err != nil {
			break
		}
		loops = append(loops, sl)
	}
	if len(loops) == 0 {
		evloop.Close(lfd)
		return false
	}
	if ln.Addr().Network() == "tcp" {
		tcpOptions(lfd)
		evloop.DeferAccept(lfd)
		// Those already queued were made without them.
		loops[0].optsUntilEmpty = true
	}
	for _, sl := range loops {
		sl.all = loops
		sl.unix = ln.Addr().Network() == "unix"
	}
	// A loop's goroutine waits for nothing but its descriptors (the
	// store is in memory): its waits may hold the P. The loops that may
	// (GOMAXPROCS-1 at most: evloop.RawWaits) are the last, which a
	// persistent client goes to first (keep); on one P, with HoldLastP,
	// the only loop does while no connection is served by a goroutine,
	// which would wait for its ticks (evloop.RawWaitsWhile); the others
	// park (also if RawWaits fails).
	for i := len(loops) - 1; i >= 0; i-- {
		if s.o.HoldLastP {
			loops[i].l.RawWaitsWhile(s.noGoroutines)
		} else {
			loops[i].l.RawWaits()
		}
		loops[i].raw = loops[i].l.WaitsRaw()
	}
	s.loopSet.Store(&loops)
	s.loops.Add(int32(len(loops)))
	// The loops accept on lfd from here on; ln's own descriptor in the
	// runtime's poller would wake a thread at every connection.
	evloop.LeavePoller(ln)
	for _, sl := range loops {
		go sl.run()
	}
	untilClosed(ln, loops[0])
	return true
}

// untilClosed returns once sl (the accepting loop) stops accepting: at
// Shutdown, or when anyone closes ln. The loop accepts on a duplicate,
// which closing ln leaves open, and nothing tells of the close: this looks
// at ln once a second, and then has sl stop. It also makes the socket
// non-blocking again if something made it blocking (logged): the loop's
// raw accept4 would wait holding its P.
func untilClosed(ln net.Listener, sl *srvLoop) {
	evloop.WatchClosed(ln, sl.accepted, func() { sl.lnClosed.Store(true); sl.l.Wake() }, func() {
		sl.s.log.Printf("Warning, the listening socket had been made blocking; it is non-blocking again")
	})
}

// noGoroutines reports whether no connection is served by a goroutine of
// its own (TLS, handed over, detached from a loop): then a loop may hold
// the last P in its raw waits.
func (s *Server) noGoroutines() bool { return s.set.Count() == 0 }

// newLoop makes a loop, accepting on lfd unless it is negative.
func (s *Server) newLoop(lfd int, others []*srvLoop) (*srvLoop, error) {
	l, err := evloop.New()
	if err != nil {
		return nil, err
	}
	sl := &srvLoop{s: s, l: l, lfd: lfd, accepted: make(chan struct{})}
	if lfd >= 0 {
		if err := l.Watch(lfd, (*lnReady)(sl)); err != nil {
			l.Close()
			return nil, err
		}
	}
	var ok bool
	if sl.stopped, sl.done, ok = s.set.AddLoop(l.Wake); !ok {
		l.Close()
		return nil, errClosing
	}
	if lfd < 0 {
		sl.stopped()
		close(sl.accepted)
	}
	return sl, nil
}

// fewestKept is the loop of loops with the fewest kept connections among
// those that wait raw (all of them when none does), a tie going to the
// later loop (the first accepts). A loop that parks in the runtime's
// poller (the accepting one, past GOMAXPROCS-1) pays the scheduler's park
// and wake-up and two epoll waits at every wait, which persistent clients
// make often: with two Ps and four persistent clients, two of them there
// cost the server 1.23 × the original distcache's CPU per operation, all
// four on the loop that waits raw 1.01 × (at 0.97 × its rate, against
// 1.09 × spread over both).
func fewestKept(loops []*srvLoop) *srvLoop {
	to := loops[len(loops)-1]
	for i := len(loops) - 2; i >= 0; i-- {
		if o := loops[i]; o.raw == to.raw && o.kept.Load() < to.kept.Load() || o.raw && !to.raw {
			to = o
		}
	}
	return to
}

// keep spreads the connections that keep asking: c, waiting in sl for its
// next request, goes to the loop fewestKept chooses. It reports whether c
// has left sl.
func (sl *srvLoop) keep(c *conn) bool {
	c.kept = true
	to := fewestKept(sl.all)
	to.kept.Add(1)
	if to == sl {
		return false
	}
	if c.watched {
		sl.l.Unwatch(c.fd)
		c.watched = false
	}
	to.mu.Lock()
	if to.shut {
		to.mu.Unlock()
		to.kept.Add(-1)
		sl.kept.Add(1)
		return false // it stays here; watched again by the caller
	}
	to.inbox = append(to.inbox, c)
	to.mu.Unlock()
	to.l.Wake()
	return true
}

// takeInbox serves the connections other loops passed to sl (keep), and
// with shut set, refuses any more.
func (sl *srvLoop) takeInbox(shut bool) {
	sl.mu.Lock()
	in := sl.inbox
	sl.inbox = nil
	sl.shut = sl.shut || shut
	sl.mu.Unlock()
	for _, c := range in {
		c.loop = sl
		sl.turn(c)
	}
}

// lnReady is the listener's Handler.
type lnReady srvLoop

func (h *lnReady) Ready() { (*srvLoop)(h).accept() }

// Ready is a connection's Handler: it has something to read.
func (c *conn) Ready() {
	switch c.where {
	case inList, inPartial:
		c.loop.unlink(c)
		c.hup = c.loop.l.HungUp()
		c.loop.turn(c)
	case inRunq:
		// Its turn comes. A hang-up is reported once (edge-triggered):
		// kept, so that the turn reads up to the end even after a read
		// that took all there was.
		c.hup = c.hup || c.loop.l.HungUp()
	}
}

// Where a connection of a loop is between its turns.
const (
	inTurn    = iota
	inList    // waiting for its next request
	inRunq    // its budget spent, more to read
	inPartial // waiting for the rest of a request (partialGrace)
)

// partialGrace is how long a connection waits in its loop for the rest of
// a request that came in pieces before it goes to a goroutine of its own,
// where the frame timeout's deadlines are: the original dc_test writes a
// request over 4 KiB in two writes, which the loop reads apart for 1.5 %
// of the requests of its multi-frame load, the second part a few
// microseconds after the first. A variable for tests.
var partialGrace = 5 * time.Millisecond

func (sl *srvLoop) run() {
	s := sl.s
	defer func() {
		sl.stopAccepting()
		sl.l.Close()
		sl.done()
	}()
	for {
		if s.set.Stopping() || sl.lnClosed.Load() {
			sl.stopAccepting()
		}
		if s.set.Closing() {
			// Every connection's next read says so: each ends, or is
			// handed over, as in its own goroutine.
			sl.takeInbox(true)
			for sl.head != nil || sl.phead != nil {
				c := sl.head
				if c == nil {
					c = sl.phead
				}
				sl.unlink(c)
				sl.turn(c)
			}
			for len(sl.runq) > 0 {
				sl.turnQueued()
			}
			return
		}
		var err error
		sl.now = time.Time{} // a new wake-up (clock)
		if len(sl.runq) > 0 || sl.acceptMore {
			err = sl.l.Poll()
			sl.turnQueued()
			if sl.acceptMore {
				sl.accept()
			}
			// Never waiting, the loop is never told of a deadline:
			// it looks at the clock (idle times, the accept pause).
			if dl := sl.deadline(); !dl.IsZero() && !time.Now().Before(dl) {
				sl.timers()
			}
		} else {
			err = sl.l.Wait(sl.deadline())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			sl.timers()
		}
		if errors.Is(err, evloop.ErrWake) {
			sl.takeInbox(false)
		}
	}
}

// turnQueued gives the connections that used up their budget another turn.
func (sl *srvLoop) turnQueued() {
	q := sl.runq
	sl.runq = nil
	for _, c := range q {
		c.where = inTurn
		sl.turn(c)
	}
	if sl.runq == nil {
		sl.runq = q[:0]
	}
}

// deadline is when the loop has to act without a descriptor telling it:
// the first idle time or partialGrace ending, accepting again after an
// error.
func (sl *srvLoop) deadline() time.Time {
	var t time.Time
	if sl.head != nil && !sl.head.rdl.IsZero() {
		t = sl.head.rdl
	}
	if sl.phead != nil && (t.IsZero() || sl.phead.partialUntil.Before(t)) {
		t = sl.phead.partialUntil
	}
	if !sl.acceptPause.IsZero() && (t.IsZero() || sl.acceptPause.Before(t)) {
		t = sl.acceptPause
	}
	return t
}

func (sl *srvLoop) timers() {
	now := time.Now()
	if !sl.acceptPause.IsZero() && !now.Before(sl.acceptPause) {
		sl.acceptPause = time.Time{}
		if sl.lfd >= 0 {
			if err := sl.l.Watch(sl.lfd, (*lnReady)(sl)); err != nil {
				// Tried again after a longer pause, as accept4 is.
				sl.s.log.Printf("Warning, accept failed: %v", err)
				sl.acceptDelay = accept.Backoff(sl.acceptDelay)
				sl.acceptPause = now.Add(sl.acceptDelay)
			}
		}
	}
	for sl.head != nil && !sl.head.rdl.IsZero() && !now.Before(sl.head.rdl) {
		c := sl.head
		sl.unlink(c)
		c.expired = true // its read fails as a deadline's would
		sl.turn(c)
	}
	for sl.phead != nil && !now.Before(sl.phead.partialUntil) {
		c := sl.phead
		sl.unlink(c)
		sl.detach(c) // the rest of its request is a goroutine's
	}
}

// accept takes the connections waiting on the listener (edge-triggered:
// until there are none; a bounded batch per turn) and serves each at once.
func (sl *srvLoop) accept() {
	sl.acceptMore = false
	for i := 0; i < 16; i++ {
		if sl.lfd < 0 || sl.s.set.Stopping() {
			return
		}
		fd, err := evloop.Accept(sl.lfd)
		if err == syscall.EAGAIN {
			sl.optsUntilEmpty = false
			return
		}
		if err != nil {
			// As accept.Set.Serve: back off instead of spinning (E-25).
			sl.s.log.Printf("Warning, accept failed: %v", err)
			sl.acceptDelay = accept.Backoff(sl.acceptDelay)
			sl.acceptPause = time.Now().Add(sl.acceptDelay)
			sl.l.Unwatch(sl.lfd)
			return
		}
		sl.acceptDelay = 0
		if sl.optsUntilEmpty {
			tcpOptions(fd)
		}
		sl.start(fd)
	}
	sl.acceptMore = true
}

func (sl *srvLoop) start(fd int) {
	s := sl.s
	c := newConn(s, nil)
	c.loop, c.fd = sl, fd
	if !s.admit(c) {
		c.loop = nil
		evloop.Close(fd)
		return
	}
	c.start()
	sl.turn(c) // the request may be there already
}

// testHookWatched, set by tests, sees each connection a loop begins to
// watch.
var testHookWatched func(fd int)

// tcpOptions gives the listening socket the options net's Accept sets
// on each connection (evloop.TCPOptions), which Linux copies to every
// connection accepted from it: set once, not per connection (the
// original distcache sets TCP_NODELAY on each; a connection opened for a
// request then costs one system call less than its). The connections
// queued before they were set on the listener are made without them: the
// accepting loop sets them on each until it finds the queue empty.
func tcpOptions(fd int) { evloop.TCPOptions(fd) }

// turn runs c until it would wait, and puts it where it waits.
func (sl *srvLoop) turn(c *conn) {
	c.idleWait, c.drained = false, false
	c.budget = loopBudget
	if c.run() {
		return
	}
	switch {
	case c.budget <= 0:
		c.where = inRunq
		sl.runq = append(sl.runq, c)
	case c.idleWait && !c.expired:
		if !c.kept && c.answered >= 2 && len(sl.all) > 1 && sl.keep(c) {
			return
		}
		if !c.watched {
			// Watched only now: most connections end before they would
			// wait (epoll reports what arrived before the watch too).
			if err := sl.l.Watch(c.fd, c); err != nil {
				sl.s.log.Printf("Warning, connection from %s: %v", c.peer(), err)
				sl.detach(c)
				return
			}
			if testHookWatched != nil {
				testHookWatched(c.fd)
			}
			c.watched = true
		}
		sl.link(c)
	default:
		// In the middle of a request (its answers all written: a
		// write that would wait leaves them queued), for partialGrace
		// in the loop, then in a goroutine, as one whose answers wait
		// for room: the frame timeout's deadlines are a goroutine's.
		if len(c.out) == 0 && sl.waitPartial(c) {
			return
		}
		sl.detach(c)
	}
}

// waitPartial has c wait in the loop for the rest of its request, until
// partialGrace after its first wait for it; false once that has passed.
func (sl *srvLoop) waitPartial(c *conn) bool {
	if partialGrace <= 0 {
		return false
	}
	now := time.Now()
	if c.partialUntil.IsZero() {
		c.partialUntil = now.Add(min(partialGrace, c.s.o.FrameTimeout))
	} else if !now.Before(c.partialUntil) {
		return false
	}
	if !c.watched {
		if sl.l.Watch(c.fd, c) != nil {
			return false
		}
		c.watched = true
	}
	sl.linkAs(c, inPartial)
	return true
}

// list is the list of connections waiting as where says (inList,
// inPartial).
func (sl *srvLoop) list(where int8) (head, tail **conn) {
	if where == inPartial {
		return &sl.phead, &sl.ptail
	}
	return &sl.head, &sl.tail
}

func (sl *srvLoop) link(c *conn) { sl.linkAs(c, inList) }

func (sl *srvLoop) linkAs(c *conn, where int8) {
	head, tail := sl.list(where)
	c.where = where
	c.prev, c.next = *tail, nil
	if *tail != nil {
		(*tail).next = c
	} else {
		*head = c
	}
	*tail = c
}

func (sl *srvLoop) unlink(c *conn) {
	if c.where != inList && c.where != inPartial {
		return
	}
	head, tail := sl.list(c.where)
	c.where = inTurn
	if c.prev != nil {
		c.prev.next = c.next
	} else if *head == c {
		*head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if *tail == c {
		*tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// closeConn closes a connection of the loop (conn.end).
func (sl *srvLoop) closeConn(c *conn) {
	sl.unlink(c)
	if c.kept {
		sl.kept.Add(-1)
	}
	if c.watched {
		sl.l.Forget(c.fd)
		c.watched = false
	}
	evloop.Close(c.fd)
	c.loop, c.fd = nil, -1
	sl.l.YieldBeforeWait() // its client may be about to connect again
}

// toNetConn takes c out of the loop and makes its socket a net.Conn (c.nc).
// When that fails (no descriptor left for the duplicate) it logs failed
// (a format for the peer and the error) and closes the socket: then c has
// neither loop nor net.Conn, and conn.end closes nothing more.
func (sl *srvLoop) toNetConn(c *conn, failed string) error {
	sl.unlink(c)
	if c.kept {
		sl.kept.Add(-1)
		c.kept = false
	}
	if c.watched {
		sl.l.Unwatch(c.fd)
		c.watched = false
	}
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate
	if err != nil {
		// Logged while the number is still the peer's; out of the
		// limits' reach (they shut it down by number) before it is
		// freed, and closed once.
		c.s.log.Printf(failed, c.peer(), err)
		c.s.limits.leave(&c.cs)
		f.Close()
		c.loop, c.fd = nil, -1
		return err
	}
	c.s.limits.swap(&c.cs, nc)
	f.Close()
	c.loop, c.fd, c.nc, c.drained = nil, -1, nc, false
	c.rdl, c.wdl = time.Time{}, time.Time{} // none set on nc yet
	c.io.Reset(nc)
	if c.io.WriteWait == nil {
		c.io.WriteWait = c.armWrite
	}
	return nil
}

// detach passes c to a goroutine of its own, where conn.run goes on. One
// whose request came in pieces comes back to a loop once it is answered
// (toLoop): only the rest of that request is the goroutine's, so that a
// client whose request once took longer than partialGrace is not served
// by a goroutine and the runtime's poller for good.
func (sl *srvLoop) detach(c *conn) {
	fromLoop := len(c.out) == 0 // not waiting for room to write
	if err := sl.toNetConn(c, "Warning, closing connection from %s: %v"); err != nil {
		c.end(metrics.CloseError, false)
		return
	}
	c.fromLoop = fromLoop
	c.s.set.Go(c.nc, func(net.Conn) { c.run() })
}

// toLoop passes c, served by a goroutine since detach and now between two
// requests with nothing left to write, to the loop with the fewest kept
// connections (its socket a duplicate; the net.Conn is closed). False when
// it cannot: c is then served on by its goroutine.
func (c *conn) toLoop() bool {
	lp := c.s.loopSet.Load()
	sc, ok := c.nc.(syscall.Conn)
	if lp == nil || len(*lp) == 0 || !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	rc.Control(func(f uintptr) {
		if r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0); e == 0 {
			fd = int(r)
		}
	})
	if fd < 0 {
		return false
	}
	to := fewestKept(*lp)
	to.mu.Lock()
	defer to.mu.Unlock()
	if to.shut {
		evloop.Close(fd)
		return false
	}
	// Within the limits' reach by its new descriptor before the old one
	// closes (they shut a loop's connections down by descriptor).
	c.s.limits.swap(&c.cs, fdSock(fd))
	c.nc.Close()
	c.nc, c.fd, c.fromLoop, c.kept = nil, fd, false, true
	c.rdl, c.wdl = time.Time{}, time.Time{}
	c.io.ResetFD(fd)
	to.kept.Add(1)
	to.inbox = append(to.inbox, c)
	to.l.Wake() // under mu: once c is in the inbox, it is the loop's
	return true
}

func (sl *srvLoop) stopAccepting() {
	if sl.lfd < 0 {
		return
	}
	sl.l.Unwatch(sl.lfd)
	evloop.Close(sl.lfd)
	sl.lfd = -1
	sl.stopped()
	close(sl.accepted)
}
