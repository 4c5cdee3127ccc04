// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"golang.org/x/sys/unix"
)

// SelectorType is the implementation of a selector (NAL_SELECTOR_TYPE
// values of nal_devel.h).
type SelectorType int

// Selector types. FdSelect and FdPoll are both served by ppoll(2), so
// neither has a descriptor-number or object-count limit (EDGES E-24).
const (
	SelectorError    SelectorType = 0
	SelectorDynamic  SelectorType = 1
	SelectorFdSelect SelectorType = 2
	SelectorFdPoll   SelectorType = 3
)

// pollRole says what a pollfd entry stands for.
type pollRole uint8

const (
	roleConn  pollRole = iota // socket connection: read and write
	roleRead                  // FD: connection, read descriptor
	roleWrite                 // FD: connection, write descriptor
	roleList                  // listener
)

type pollOwner struct {
	c    *Connection
	l    *Listener
	role pollRole
}

// Selector waits for readiness of the connections and listeners bound to
// it (NAL_SELECTOR). Each Select records per-object readiness, which IO
// and Accept then consume.
//
// Not safe for concurrent use (nor are the objects bound to it).
type Selector struct {
	typ    SelectorType
	conns  []*Connection
	lists  []*Listener
	pfds   []unix.PollFd
	owners []pollOwner
	freed  bool
	raw    bool // SetRaw
}

// NewSelector returns a dynamic selector (NAL_SELECTOR_new): it becomes a
// poll selector when the first object is bound; until then Select fails.
func NewSelector() *Selector { return &Selector{typ: SelectorDynamic} }

// NewSelectorFdSelect returns a selector of type SelectorFdSelect
// (NAL_SELECTOR_new_fdselect). It is implemented with ppoll(2).
func NewSelectorFdSelect() *Selector { return &Selector{typ: SelectorFdSelect} }

// NewSelectorFdPoll returns a selector of type SelectorFdPoll
// (NAL_SELECTOR_new_fdpoll).
func NewSelectorFdPoll() *Selector { return &Selector{typ: SelectorFdPoll} }

func (s *Selector) usable() bool { return s != nil && !s.freed }

// Type returns the selector's implementation type (SelectorError if freed).
func (s *Selector) Type() SelectorType {
	if !s.usable() {
		return SelectorError
	}
	return s.typ
}

// rawSliceUsec bounds how long a raw Select holds its P (microseconds):
// an answer from a local dc_server or dc_client comes within 30-100 us.
const rawSliceUsec = 200

// SetRaw puts s in raw mode (or takes it out): Select's ppoll(2) and the
// reads and sends of the socket connections bound to s are then made
// without telling the Go scheduler (rawsys.go), so a caller that waits
// briefly keeps its P instead of having it taken back and handed to
// another thread mid-wait. Nothing else runs on that P meanwhile, so the
// raw part of a wait is at most rawSliceUsec: a longer one goes on as an
// ordinary system call (other goroutines, timers and the garbage
// collector would otherwise wait for the runtime's preemption, 10-20 ms).
func (s *Selector) SetRaw(on bool) {
	if s.usable() {
		s.raw = on
	}
}

// Free unbinds every object still bound (unlike the original, EDGES E-40)
// and destroys the selector (NAL_SELECTOR_free). Safe on nil and twice.
func (s *Selector) Free() {
	if !s.usable() {
		return
	}
	s.Reset()
	s.freed = true
}

// Reset unbinds every bound object, leaving the selector empty
// (NAL_SELECTOR_reset). Its type is kept.
func (s *Selector) Reset() {
	if !s.usable() {
		return
	}
	for len(s.conns) > 0 {
		s.conns[len(s.conns)-1].DelFromSelector()
	}
	for len(s.lists) > 0 {
		s.lists[len(s.lists)-1].DelFromSelector()
	}
	s.pfds, s.owners = nil, nil
}

// NumObjects returns the number of bound connections and listeners
// (NAL_SELECTOR_num_objects).
func (s *Selector) NumObjects() uint32 {
	if !s.usable() {
		return 0
	}
	return uint32(len(s.conns) + len(s.lists))
}

func (s *Selector) bind() {
	if s.typ == SelectorDynamic {
		s.typ = SelectorFdPoll
	}
}

func (s *Selector) addConn(c *Connection) {
	s.bind()
	c.sel, c.selIdx = s, len(s.conns)
	c.rdy, c.wry, c.excy = false, false, false
	s.conns = append(s.conns, c)
}

func (s *Selector) delConn(c *Connection) {
	i, last := c.selIdx, len(s.conns)-1
	if i < 0 || i > last || s.conns[i] != c {
		c.sel = nil
		return
	}
	s.conns[i] = s.conns[last]
	s.conns[i].selIdx = i
	s.conns[last] = nil
	s.conns = s.conns[:last]
	c.sel, c.selIdx = nil, -1
}

func (s *Selector) addList(l *Listener) {
	s.bind()
	l.sel, l.selIdx = s, len(s.lists)
	l.caught = false
	s.lists = append(s.lists, l)
}

func (s *Selector) delList(l *Listener) {
	i, last := l.selIdx, len(s.lists)-1
	if i < 0 || i > last || s.lists[i] != l {
		l.sel = nil
		return
	}
	s.lists[i] = s.lists[last]
	s.lists[i].selIdx = i
	s.lists[last] = nil
	s.lists = s.lists[:last]
	l.sel, l.selIdx = nil, -1
}

func (s *Selector) add(fd int, ev int16, o pollOwner) {
	s.pfds = append(s.pfds, unix.PollFd{Fd: int32(fd), Events: ev})
	s.owners = append(s.owners, o)
}

// Select waits until a bound object can make progress or the timeout
// passes (NAL_SELECTOR_select). Without useTimeout it may wait forever;
// with it, it waits usec microseconds (exactly, via ppoll(2): short
// timeouts do block, unlike the original poll selector). It returns the
// number of ready descriptors (> 0), 0 on timeout, or -1 with the errno
// value as err (unix.EINTR when a signal arrived; callers loop). A dynamic
// selector to which nothing was ever bound returns -1 with a nil error
// at once (the original returned -1 without touching errno).
//
// Interest per object: a connection asks to read if established and its
// read buffer is not full, to write if its connect is pending or its send
// buffer is not empty; a listener asks to read until it has a pending
// connection. Error conditions are always reported. The readiness found
// is recorded on each object and consumed by its next IO or Accept;
// readiness from earlier rounds is dropped at the start of each Select.
func (s *Selector) Select(usec uint64, useTimeout bool) (int, error) {
	if !s.usable() {
		return -1, unix.EINVAL
	}
	if s.typ == SelectorDynamic {
		return -1, nil
	}
	s.pfds, s.owners = s.pfds[:0], s.owners[:0]
	for _, c := range s.conns {
		c.rdy, c.wry, c.excy = false, false, false
		switch c.kind {
		case connSock:
			var ev int16
			if c.established && c.read.NotFull() {
				ev |= unix.POLLIN
			}
			if !c.established || c.send.NotEmpty() {
				ev |= unix.POLLOUT
			}
			s.add(c.fd, ev, pollOwner{c: c, role: roleConn})
		case connFD:
			if c.rf.fd >= 0 && c.rf.fd == c.wf.fd {
				var ev int16
				if c.read.NotFull() {
					ev |= unix.POLLIN
				}
				if c.send.NotEmpty() {
					ev |= unix.POLLOUT
				}
				s.add(c.rf.fd, ev, pollOwner{c: c, role: roleConn})
				continue
			}
			if c.rf.fd >= 0 {
				var ev int16
				if c.read.NotFull() {
					ev = unix.POLLIN
				}
				s.add(c.rf.fd, ev, pollOwner{c: c, role: roleRead})
			}
			if c.wf.fd >= 0 {
				var ev int16
				if c.send.NotEmpty() {
					ev = unix.POLLOUT
				}
				s.add(c.wf.fd, ev, pollOwner{c: c, role: roleWrite})
			}
		}
	}
	for _, l := range s.lists {
		if l.caught {
			continue
		}
		switch {
		case l.kind == kindFD:
			if !l.accepted && l.rfd >= 0 {
				s.add(l.rfd, unix.POLLIN, pollOwner{l: l, role: roleList})
			} else if !l.accepted && l.wfd >= 0 {
				// FD:-1:<w>: nothing to wait for; acceptable at once.
				s.add(l.wfd, unix.POLLOUT, pollOwner{l: l, role: roleList})
			}
		default:
			s.add(l.fd, unix.POLLIN, pollOwner{l: l, role: roleList})
		}
	}
	var ts *unix.Timespec
	if useTimeout {
		ts = &unix.Timespec{Sec: int64(usec / 1e6), Nsec: int64(usec%1e6) * 1000}
	}
	var n int
	var err error
	if s.raw && (!useTimeout || usec > rawSliceUsec) {
		// Raw for a short slice only: an answer that comes quickly keeps
		// the P, one that is late gives it back for the rest of the wait.
		n, err = rawPpoll(s.pfds, &unix.Timespec{Nsec: rawSliceUsec * 1000})
		if err == nil && n == 0 {
			if useTimeout {
				rest := usec - rawSliceUsec
				ts = &unix.Timespec{Sec: int64(rest / 1e6), Nsec: int64(rest%1e6) * 1000}
			}
			n, err = unix.Ppoll(s.pfds, ts, nil)
		}
	} else if s.raw {
		n, err = rawPpoll(s.pfds, ts)
	} else {
		n, err = unix.Ppoll(s.pfds, ts, nil)
	}
	if err != nil {
		return -1, err
	}
	if n <= 0 {
		return n, nil
	}
	const bad = unix.POLLERR | unix.POLLHUP | unix.POLLNVAL
	for i := range s.pfds {
		rev := s.pfds[i].Revents
		if rev == 0 {
			continue
		}
		ev := s.pfds[i].Events
		o := s.owners[i]
		if o.role == roleList {
			o.l.caught = true
			continue
		}
		c := o.c
		in := rev&unix.POLLIN != 0 || (ev&unix.POLLIN != 0 && rev&unix.POLLHUP != 0)
		out := rev&unix.POLLOUT != 0
		switch o.role {
		case roleRead:
			out = false
		case roleWrite:
			in = false
		}
		if in {
			c.rdy = true
		}
		if out {
			c.wry = true
		}
		if !in && !out && rev&bad != 0 {
			c.excy = true
		}
	}
	return n, nil
}
