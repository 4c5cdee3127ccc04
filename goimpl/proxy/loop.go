// SPDX-License-Identifier: Apache-2.0

package proxy

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
)

// Event loops (goimpl/evloop) serve the local connections of a unix
// listener while they are young, when the store cannot start calls
// without waiting (async.go serves the others): Apache through the C library opens a
// connection per operation, and a goroutine, a net.Conn and a poller
// registration per connection cost more than the request. A loop accepts
// with a raw accept4, reads the request, asks the store and writes the
// answer from its own goroutine, with raw system calls only; a connection
// that has sent its request and waits for the answer costs nothing else.
//
// The store's answer comes from the upstream server, so the loop's
// goroutine waits in the store call. While it waits, the listener must be
// watched by someone else: leader and followers. One loop at a time holds
// the listener (in its epoll set); before its goroutine calls the store it
// passes the listener to a loop that is free (one epoll_ctl out of its
// set, one into the other's), and that loop's goroutine, parked in the
// runtime's poller, is woken only if a connection comes meanwhile. No
// goroutine is woken to hand anything over, and with one client at a time
// no other goroutine runs at all. Loops are made as concurrent requests
// need them, up to maxLoops; beyond, and while accepting is paused after
// an error, a connection goes to a goroutine of its own instead.
//
// A connection leaves its loop for a goroutine of its own (net.Conn,
// deadlines, rawio.Quiet: the one way of serving, client.run) once it has
// been answered keptAfter times (a persistent client: it would hold up the
// loop's other connections, and goroutines spread over the CPUs), when
// its request comes in pieces, or when its answer does not fit in the
// socket. Connections that wait in a loop are young ones between two
// requests (most often for the end of the stream after one answer).
// Loops are not used with Idle (they keep no time) or on other listeners
// than unix sockets.

// keptAfter is how many answers a connection gets in a loop before it
// goes to a goroutine of its own.
const keptAfter = 2

// maxLoops bounds the loops of a Serve: one per request being answered at
// the same time, and one accepting.
var maxLoops = max(8, 4*runtime.GOMAXPROCS(0))

// loopSet is the loops of one Serve.
type loopSet struct {
	p      *Proxy
	inLoop atomic.Int32 // connections loops serve (for MaxClients)

	mu       sync.Mutex
	lfd      int      // the listener (a duplicate); -1 once accepting has stopped
	holder   *pLoop   // the loop watching lfd
	free     []*pLoop // loops not in a store call (lazily: see pLoop.inFree)
	all      []*pLoop
	stopped  chan struct{} // closed when accepting stops
	lnClosed atomic.Bool   // the listener was closed (evloop.WatchClosed)

	// After an accept error the holder pauses accepting (lfd disarmed);
	// the listener does not pass meanwhile.
	pause time.Time
	delay time.Duration
}

// pLoop is one loop: its goroutine, its epoll set, the connections
// waiting in it.
type pLoop struct {
	set           *loopSet
	l             *evloop.Loop
	stopped, done func() // accept.Set.AddLoop
	inCall        bool   // in a store call (set.mu)
	inFree        bool   // in set.free (set.mu)
	closed        bool   // its goroutine has ended (set.mu)
	acceptMore    bool   // the listener may have more (edge-triggered)
	head          *client
}

// serveLoops serves ln from event loops until accepting stops; false
// when it cannot (not a unix listener, Idle, no descriptor), and nothing
// is started.
func (p *Proxy) serveLoops(ln net.Listener) bool {
	if p.idle > 0 || ln.Addr().Network() != "unix" {
		return false
	}
	lfd, err := evloop.ListenerFD(ln)
	if err != nil {
		return false
	}
	ls := &loopSet{p: p, lfd: lfd, stopped: make(chan struct{})}
	first, err := ls.newLoop()
	if err != nil {
		evloop.Close(lfd)
		return false
	}
	if err := first.l.Arm(lfd); err != nil {
		first.l.Close()
		first.done()
		evloop.Close(lfd)
		return false
	}
	ls.holder = first
	go first.run()
	evloop.WatchClosed(ln, ls.stopped, func() {
		ls.lnClosed.Store(true)
		ls.wakeAll()
	}, func() {
		p.log.Printf("Warning, the listening socket had been made blocking; it is non-blocking again")
	})
	return true
}

// newLoop makes a loop (set.mu held, or before any runs); its goroutine
// is the caller's to start.
func (ls *loopSet) newLoop() (*pLoop, error) {
	l, err := evloop.New()
	if err != nil {
		return nil, err
	}
	pl := &pLoop{set: ls, l: l}
	var ok bool
	if pl.stopped, pl.done, ok = ls.p.set.AddLoop(l.Wake); !ok {
		l.Close()
		return nil, errClosing
	}
	l.Lend(ls.lfd, (*lnReady)(pl))
	ls.all = append(ls.all, pl)
	return pl, nil
}

func (ls *loopSet) wakeAll() {
	ls.mu.Lock()
	all := ls.all
	ls.mu.Unlock()
	for _, pl := range all {
		pl.l.Wake()
	}
}

// lnReady is the listener's Handler in every loop.
type lnReady pLoop

func (h *lnReady) Ready() { (*pLoop)(h).accept() }

func (pl *pLoop) run() {
	p := pl.set.p
	defer func() {
		pl.stopAccepting()
		ls := pl.set
		ls.mu.Lock()
		pl.closed = true // no more passes to it (busy)
		ls.mu.Unlock()
		pl.l.Close()
		pl.done()
	}()
	for {
		lnClosed := pl.set.lnClosed.Load()
		if p.set.Stopping() || lnClosed {
			pl.stopAccepting()
		}
		if p.set.Closing() {
			// Each connection's next read says so: it ends, or is
			// handed over, as in a goroutine of its own.
			for pl.head != nil {
				c := pl.head
				pl.unlink(c)
				pl.turn(c)
			}
			return
		}
		if lnClosed && !p.set.Stopping() {
			// Serve has returned, and no Shutdown may come to end
			// the loop: its connections go on in goroutines of
			// their own, as those of a Serve without loops do.
			for pl.head != nil {
				pl.detach(pl.head)
			}
			return
		}
		var err error
		if pl.acceptMore {
			err = pl.l.Poll()
			pl.accept()
		} else {
			err = pl.l.Wait(pl.deadline())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			pl.resume()
		}
	}
}

// deadline is when a paused accept resumes (zero: none).
func (pl *pLoop) deadline() time.Time {
	ls := pl.set
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.holder != pl {
		return time.Time{}
	}
	return ls.pause
}

// resume accepts again after an accept error's pause.
func (pl *pLoop) resume() {
	ls := pl.set
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.holder != pl || ls.pause.IsZero() || time.Now().Before(ls.pause) {
		return
	}
	if err := pl.l.Arm(ls.lfd); err != nil {
		ls.p.log.Printf("Warning, accept failed: %v", err)
		ls.delay = accept.Backoff(ls.delay)
		ls.pause = time.Now().Add(ls.delay)
		return
	}
	ls.pause = time.Time{}
}

// stopAccepting closes the listener's duplicate if this loop holds it, and
// says this loop accepts no more.
func (pl *pLoop) stopAccepting() {
	ls := pl.set
	ls.mu.Lock()
	if ls.holder == pl && ls.lfd >= 0 {
		pl.l.Disarm(ls.lfd)
		evloop.Close(ls.lfd)
		ls.lfd, ls.holder = -1, nil
		close(ls.stopped)
	}
	ls.mu.Unlock()
	pl.stopped()
}

// accept takes the connections waiting on the listener (edge-triggered:
// until there are none; a batch per turn) and serves each at once, until
// one's store call has the listener passed to another loop.
func (pl *pLoop) accept() {
	ls, p := pl.set, pl.set.p
	pl.acceptMore = false
	for i := 0; i < 16; i++ {
		ls.mu.Lock()
		lfd := ls.lfd
		if ls.holder != pl || !ls.pause.IsZero() {
			lfd = -1
		}
		ls.mu.Unlock()
		if lfd < 0 || p.set.Stopping() {
			return
		}
		fd, err := evloop.Accept(lfd)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil {
			// As accept.Set.Serve: back off instead of spinning (E-25).
			p.log.Printf("Warning, accept failed: %v", err)
			ls.mu.Lock()
			ls.delay = accept.Backoff(ls.delay)
			ls.pause = time.Now().Add(ls.delay)
			pl.l.Disarm(lfd)
			ls.mu.Unlock()
			return
		}
		ls.mu.Lock()
		ls.delay = 0
		ls.mu.Unlock()
		if p.set.Max > 0 && p.set.Count()+int(ls.inLoop.Load()) >= p.set.Max {
			p.refuse()
			evloop.Close(fd)
			continue
		}
		ls.inLoop.Add(1)
		c := newClient(p, nil)
		c.lp, c.fd = pl, fd
		c.io.ResetFD(fd)
		p.m.ConnAccepted()
		pl.turn(c) // the request may be there already
	}
	pl.acceptMore = true
}

// Ready is a waiting connection's Handler: it has something to read.
func (c *client) Ready() {
	if c.lp != nil && c.waiting {
		c.lp.unlink(c)
		c.lp.turn(c)
	}
}

// turn serves c until it would wait, and puts it where it waits.
func (pl *pLoop) turn(c *client) {
	if c.run() {
		return
	}
	if !c.watched {
		if err := pl.l.Watch(c.fd, c); err != nil {
			pl.set.p.log.Printf("Warning, local client: %v", err)
			pl.detach(c)
			return
		}
		c.watched = true
	}
	c.waiting = true
	c.prev, c.next = nil, pl.head
	if pl.head != nil {
		pl.head.prev = c
	}
	pl.head = c
}

func (pl *pLoop) unlink(c *client) {
	if !c.waiting {
		return
	}
	c.waiting = false
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		pl.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// busy is called before c's loop calls the store: the loop is taken for
// the call's time, and when it holds the listener it passes it to a free
// loop (made if need be). When none can take it (maxLoops are answering,
// or accepting is paused or over) the loop keeps it through the call:
// new connections then wait in the listener's backlog for that long.
func (pl *pLoop) busy() {
	ls := pl.set
	ls.mu.Lock()
	defer ls.mu.Unlock()
	pl.inCall = true
	if ls.holder != pl || !ls.pause.IsZero() || ls.lfd < 0 || ls.p.set.Stopping() || ls.lnClosed.Load() {
		return
	}
	var to *pLoop
	for len(ls.free) > 0 && to == nil {
		o := ls.free[len(ls.free)-1]
		ls.free = ls.free[:len(ls.free)-1]
		o.inFree = false
		if !o.inCall && !o.closed && o != pl {
			to = o
		}
	}
	fresh := false
	if to == nil {
		if len(ls.all) >= maxLoops {
			return
		}
		o, err := ls.newLoop()
		if err != nil {
			return
		}
		to, fresh = o, true
	}
	if err := to.l.Arm(ls.lfd); err != nil {
		if fresh {
			go to.run() // it has nothing to do but end with the others
		} else {
			to.inFree = true
			ls.free = append(ls.free, to)
		}
		return
	}
	pl.l.Disarm(ls.lfd)
	ls.holder = to
	if fresh {
		go to.run()
	}
}

// idle is called after the store call busy preceded.
func (pl *pLoop) idle() {
	ls := pl.set
	ls.mu.Lock()
	pl.inCall = false
	if !pl.inFree && ls.holder != pl {
		pl.inFree = true
		ls.free = append(ls.free, pl)
	}
	ls.mu.Unlock()
}

// closeConn closes a connection of the loop.
func (pl *pLoop) closeConn(c *client) {
	pl.unlink(c)
	if c.watched {
		pl.l.Forget(c.fd)
		c.watched = false
	}
	evloop.Close(c.fd)
	pl.set.inLoop.Add(-1)
	c.lp, c.fd = nil, -1
}

// toNetConn takes c out of its loop and makes its socket a net.Conn (c.nc),
// read and written as in a goroutine of its own; false when that fails
// (logged, the socket closed: c has neither loop nor net.Conn).
func (pl *pLoop) toNetConn(c *client) bool {
	pl.unlink(c)
	if c.watched {
		pl.l.Unwatch(c.fd)
		c.watched = false
	}
	pl.set.inLoop.Add(-1)
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate
	f.Close()
	c.lp, c.fd = nil, -1
	if err != nil {
		pl.set.p.log.Printf("Warning, closing local client: %v", err)
		return false
	}
	c.nc = nc
	c.io.Reset(nc)
	return true
}

// testHookDetach, set by tests, sees each connection leave its loop.
var testHookDetach func()

// detach passes c to a goroutine of its own, where client.serve goes on.
func (pl *pLoop) detach(c *client) {
	if testHookDetach != nil {
		testHookDetach()
	}
	if !pl.toNetConn(c) {
		c.end(closeError, false)
		return
	}
	pl.set.p.set.Go(c.nc, func(net.Conn) { c.goServe() })
}
