// SPDX-License-Identifier: Apache-2.0

package accept

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Set is the accept loop and connection bookkeeping that dc_server and
// dc_client share: accept errors back off instead of wedging the listener
// (E-25), at most Max connections are admitted, and Shutdown stops
// accepting and lets the connections finish what they were answering.
type Set struct {
	Max    int            // simultaneous connections admitted; 0 = no limit
	OnFull func(net.Conn) // reports a connection refused at Max (then closed)
	Log    Logger         // accept errors; nil: a RateLog of its own

	closing  atomic.Bool
	stopping atomic.Bool  // Shutdown has begun: accept no more
	wakers   []func()     // of the event loops (AddLoop)
	grace    atomic.Int64 // nanoseconds; see SetGrace
	handoff  atomic.Int32 // see SetHandOff: 0 no, 1 reads, 2 reads and writes
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	loops    sync.WaitGroup // running Serve loops
}

// Closing reports whether Shutdown has begun.
func (s *Set) Closing() bool { return s.closing.Load() }

// Count is the number of connections registered (accepted by Serve,
// passed on by Go, adopted), for a caller that admits connections of its
// own event loops under the same Max.
func (s *Set) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Stopping reports whether Shutdown has begun, and accepting is to end
// (before Closing).
func (s *Set) Stopping() bool { return s.stopping.Load() }

// AddLoop registers an event loop of the caller's that accepts and serves
// connections itself (goimpl/evloop), so that Shutdown stops it as it
// stops Serve and the connections: Shutdown calls wake (from another
// goroutine) when the loop is to look at Stopping, then stop accepting and
// call stopped, and again once Closing is set, when it is to end its
// connections or pass them on as a serve function does at its next read,
// then call done. A handover's Shutdown waits for stopped, and every
// Shutdown for done as it waits for the connections. AddLoop reports
// false, and registers nothing, once Shutdown has begun.
func (s *Set) AddLoop(wake func()) (stopped, done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return nil, nil, false
	}
	s.wakers = append(s.wakers, wake)
	s.loops.Add(1)
	s.wg.Add(1)
	return sync.OnceFunc(s.loops.Done), sync.OnceFunc(s.wg.Done), true
}

// Go serves a connection an event loop passes on to a goroutine of its own
// (AddLoop): as one Serve accepted, also after Shutdown has begun (serve
// then sees Closing at its next read, as those do).
func (s *Set) Go(nc net.Conn, serve func(net.Conn)) {
	s.mu.Lock()
	s.start(nc, serve)
	s.mu.Unlock()
}

func (s *Set) wakeLoops() {
	s.mu.Lock()
	w := s.wakers
	s.mu.Unlock()
	for _, f := range w {
		f()
	}
}

// HandingOff reports whether Shutdown has begun and is a handover
// (SetHandOff): a connection then passes itself on at its next read or
// write instead of being served or closed.
func (s *Set) HandingOff() bool { return s.closing.Load() && s.handoff.Load() > 0 }

// Backoff is the pause after an accept error that followed a pause of d
// (0 after a success): 5 ms doubling up to a second, so that a listener
// out of descriptors is retried without spinning.
func Backoff(d time.Duration) time.Duration {
	return min(max(2*d, 5*time.Millisecond), time.Second)
}

// Serve accepts until the listener is closed or fails, running serve for
// each admitted connection in a goroutine of its own. serve closes its
// connection.
func (s *Set) Serve(ln net.Listener, serve func(net.Conn)) {
	s.loops.Add(1)
	defer s.loops.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.logf("Warning, accept failed: %v", err)
			delay = Backoff(delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return
		}
		if s.Max > 0 && len(s.conns) >= s.Max {
			s.mu.Unlock()
			if s.OnFull != nil {
				s.OnFull(nc)
			}
			nc.Close()
			continue
		}
		s.start(nc, serve)
		s.mu.Unlock()
	}
}

// start registers nc and runs serve for it (under s.mu).
func (s *Set) start(nc net.Conn, serve func(net.Conn)) {
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[nc] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.forget(nc)
		serve(nc)
	}()
}

// Adopt serves a connection accepted by another process (handed over by
// the process this one replaces) as if Serve had accepted it: Shutdown
// waits for it too. After Shutdown has begun it is closed.
func (s *Set) Adopt(nc net.Conn, serve func(net.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		nc.Close()
		return
	}
	s.start(nc, serve)
}

func (s *Set) forget(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.wg.Done()
}

// SetGrace makes Shutdown stop accepting, then serve the connections it has
// for d before it interrupts them: for a handover to another process, to
// which new connections then go.
func (s *Set) SetGrace(d time.Duration) { s.grace.Store(int64(d)) }

// SetHandOff makes Shutdown a handover of the connections to a successor
// that shares the listening socket: accepting stops first (every
// connection accepted until then is registered), then every connection's
// read, and with writes its write too, is interrupted at once; each
// connection's serve function passes it on instead of closing it.
func (s *Set) SetHandOff(writes bool) {
	if writes {
		s.handoff.Store(2)
	} else {
		s.handoff.Store(1)
	}
}

// Shutdown stops accepting, interrupts every connection's next read, and
// waits up to wait for the connections to finish.
func (s *Set) Shutdown(ln net.Listener, wait time.Duration) {
	s.mu.Lock()
	s.stopping.Store(true) // under mu: AddLoop registers no loop after this
	s.mu.Unlock()
	s.wakeLoops()
	handoff := s.handoff.Load()
	if handoff > 0 {
		ln.Close()
		s.loops.Wait()
	} else if g := time.Duration(s.grace.Load()); g > 0 {
		// Handing over to a successor that shares the listening socket:
		// stop accepting, and let the connections just accepted deliver
		// and get the requests their clients have sent.
		ln.Close()
		time.Sleep(g)
	}
	s.closing.Store(true)
	ln.Close()
	s.mu.Lock()
	for nc := range s.conns {
		nc.SetReadDeadline(time.Unix(1, 0))
		if handoff == 2 {
			nc.SetWriteDeadline(time.Unix(1, 0))
		}
	}
	s.mu.Unlock()
	s.wakeLoops()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

func (s *Set) logf(format string, args ...any) {
	if s.Log == nil {
		stderrLog.Printf(format, args...)
		return
	}
	s.Log.Printf(format, args...)
}
