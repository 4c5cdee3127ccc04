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

	closing atomic.Bool
	grace   atomic.Int64 // nanoseconds; see SetGrace
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Closing reports whether Shutdown has begun.
func (s *Set) Closing() bool { return s.closing.Load() }

// Serve accepts until the listener is closed or fails, running serve for
// each admitted connection in a goroutine of its own. serve closes its
// connection.
func (s *Set) Serve(ln net.Listener, serve func(net.Conn)) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.logf("Warning, accept failed: %v", err)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
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
		if s.conns == nil {
			s.conns = make(map[net.Conn]struct{})
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.forget(nc)
			serve(nc)
		}()
	}
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

// Shutdown stops accepting, interrupts every connection's next read, and
// waits up to wait for the connections to finish.
func (s *Set) Shutdown(ln net.Listener, wait time.Duration) {
	if g := time.Duration(s.grace.Load()); g > 0 {
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
	}
	s.mu.Unlock()
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
