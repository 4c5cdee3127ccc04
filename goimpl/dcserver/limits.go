// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounded memory per connection (issue #10 item 1). What a connection may
// hold is bounded three ways:
//
//   - Per connection: answers are written once 16 KiB are queued, and a
//     connection that has not taken its answers is not read any further
//     (its goroutine is blocked in the write), so it holds at most the
//     queue plus one answer (16 KiB + 32 KiB) beyond its base buffers. A
//     connection going idle drops buffers grown past the base sizes.
//   - Process-wide: the bytes connections hold beyond their base sizes are
//     counted against Options.ConnMemory; past it, the connection that has
//     waited longest for its client to take its answers is closed, until
//     the count is back within the budget. Clients that read their answers
//     are never closed for it.
//   - Connection count: at Options.MaxConns, a new connection takes the
//     place of the one that has waited longest for its client to take its
//     answers, else of the one longest in the middle of a request, else of
//     the oldest that has not sent a request yet, else of the one idle
//     longest if it has been idle for over the frame timeout (a candidate
//     must have been in its state for 100 ms at least); when there is none
//     it is refused. So hostile or stuck peers cannot lock a
//     well-behaved client out, and a client that has been answered is not
//     closed for a newcomer while it is in use.

const (
	outBase     = 16 << 10 // queued answers are written at this size
	payloadBase = 4 << 10  // payload scratch kept across requests
	// DefaultConnMemory is Options.ConnMemory's default.
	DefaultConnMemory = 32 << 20
	// ConnBase is what one connection costs at most below the budget's
	// reach: goroutine stack, read buffer, base-size answer and payload
	// buffers, bookkeeping (the kernel's socket buffers are not counted).
	ConnBase = 48 << 10
	// DefaultMaxConns is dc_server's default -maxconns.
	DefaultMaxConns = 1024
)

// Connection states, in the order connections are chosen for closing.
const (
	stateWriting int32 = iota // blocked writing answers the client does not take
	statePartial              // in the middle of a request
	stateNew                  // accepted, no request received yet
	stateIdle                 // waiting for its next request
	stateBusy                 // answering (never chosen)
)

// connState is what the limits need to know of a connection, written by its
// goroutine and read by others.
type connState struct {
	raw     sock // the accepted connection, closed to evict
	state   atomic.Int32
	since   atomic.Int64 // UnixNano of entering the state
	charged int64        // bytes counted in Server.connMem (own goroutine only)

	// Its place in the registry's list (registry.mu).
	prev, next *connState
	listed     bool
}

// sock is what the limits close to evict a connection: its net.Conn, or
// the socket of a connection an event loop serves (fdSock).
type sock interface {
	Close() error
	RemoteAddr() net.Addr
}

func (cs *connState) set(state int32, now time.Time) {
	cs.state.Store(state)
	cs.since.Store(now.UnixNano())
}

// registry is the set of live connections for the limits: a list through
// the connStates, so that a connection's admission and leaving cost a
// lock and a few pointers (a map's insertion and deletion were about
// 150 ns per connection, BenchmarkRegistry).
type registry struct {
	mu   sync.Mutex
	head *connState
	n    int
}

// add lists cs (r.mu held).
func (r *registry) add(cs *connState) {
	cs.prev, cs.next, cs.listed = nil, r.head, true
	if r.head != nil {
		r.head.prev = cs
	}
	r.head = cs
	r.n++
}

// remove takes cs off the list if it is on it (r.mu held).
func (r *registry) remove(cs *connState) {
	if !cs.listed {
		return
	}
	if cs.prev != nil {
		cs.prev.next = cs.next
	} else {
		r.head = cs.next
	}
	if cs.next != nil {
		cs.next.prev = cs.prev
	}
	cs.prev, cs.next, cs.listed = nil, nil, false
	r.n--
}

// each calls f for every listed connection (r.mu held).
func (r *registry) each(f func(*connState)) {
	for cs := r.head; cs != nil; cs = cs.next {
		f(cs)
	}
}

// minVictimAge is how long a connection must have been in a state to be
// closed for the limits: a client that takes its answers spends far less
// in a write, even on a loaded machine.
const minVictimAge = time.Second

// admit registers cs; at max (0: no limit) it first closes the best victim
// (returned, with its peer and state as they were; an idle one only when
// idle for idleAge), and refuses cs (false) when there is none.
func (r *registry) admit(cs *connState, max int, now time.Time, idleAge time.Duration) (*victim, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v *victim
	if max > 0 && r.n >= max {
		vs := r.victim(stateIdle, now, idleAge)
		if vs == nil {
			return nil, false
		}
		v = r.evict(vs) // its goroutine or loop ends it when it sees the close
	}
	r.add(cs)
	return v, true
}

// victim is a connection closed for the limits, as it was.
type victim struct {
	peer  string
	state int32
}

// evict closes cs (r.mu held): its peer is read first, while the
// descriptor is certainly its own.
func (r *registry) evict(cs *connState) *victim {
	v := &victim{peer: peer(cs.raw), state: cs.state.Load()}
	r.remove(cs)
	cs.raw.Close()
	return v
}

// swap makes nc what evicting cs closes (a connection leaving its event
// loop for a goroutine).
func (r *registry) swap(cs *connState, nc sock) {
	r.mu.Lock()
	cs.raw = nc
	r.mu.Unlock()
}

func (r *registry) leave(cs *connState) {
	r.mu.Lock()
	r.remove(cs)
	r.mu.Unlock()
}

// victim is the connection of the lowest state up to worst, longest in it,
// and in it for minVictimAge at least (idleAge when idle). Called with r.mu
// held.
func (r *registry) victim(worst int32, now time.Time, idleAge time.Duration) *connState {
	young := now.Add(-minVictimAge).UnixNano()
	youngIdle := now.Add(-idleAge).UnixNano()
	var best *connState
	var bs int32
	var bt int64
	for cs := r.head; cs != nil; cs = cs.next {
		st := cs.state.Load()
		if st > worst {
			continue
		}
		t := cs.since.Load()
		if t > young || (st == stateIdle && t > youngIdle) {
			continue
		}
		if best == nil || st < bs || (st == bs && t < bt) {
			best, bs, bt = cs, st, t
		}
	}
	return best
}

// reapStalled closes the connection waiting longest for its client to take
// its answers and returns it (nil: there is none).
func (r *registry) reapStalled(now time.Time) *victim {
	r.mu.Lock()
	defer r.mu.Unlock()
	if vs := r.victim(stateWriting, now, 0); vs != nil {
		return r.evict(vs)
	}
	return nil
}

func stateName(st int32) string {
	switch st {
	case stateWriting:
		return "its answers not taken"
	case statePartial:
		return "in the middle of a request"
	case stateNew:
		return "no request yet"
	case stateIdle:
		return "idle"
	}
	return "busy"
}

// account charges the connection's buffers beyond their base sizes to the
// process-wide budget, and enforces it.
func (c *conn) account() {
	held := max(0, int64(cap(c.out)-outBase)) + max(0, int64(cap(c.payload)-payloadBase))
	if d := held - c.cs.charged; d != 0 {
		c.cs.charged = held
		s := c.s
		if s.connMem.Add(d) > s.connBudget && d > 0 {
			s.enforceBudget()
		}
	}
}

// trim drops buffers grown past the base sizes, before the connection
// waits for its next request.
func (c *conn) trim() {
	if cap(c.out) > outBase {
		c.out = nil
	}
	if cap(c.payload) > payloadBase {
		c.payload = nil
	}
	if c.cs.charged != 0 {
		c.account()
	}
}

// uncharge returns the connection's charge when it ends.
func (c *conn) uncharge() {
	if c.cs.charged != 0 {
		c.s.connMem.Add(-c.cs.charged)
		c.cs.charged = 0
	}
}
