// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"syscall"
)

// Muted listeners. A listening socket that event loops accept on (their
// own epoll sets watch a duplicate of it) is still in the runtime
// poller's epoll set, where each new connection also wakes the thread
// parked in the poller, on another CPU, for nothing: no goroutine waits
// in its Accept. Mute takes the socket out of the runtime's set
// (EPOLL_CTL_DEL of the entry found in /proc/self/fdinfo, as Quiet finds
// it); Unmute puts the same entry back. An Accept on a muted listener
// would never be told of a connection: only Close (or a deadline) ends
// it. Closing a muted listener is as closing any: the runtime's own
// EPOLL_CTL_DEL then finds no entry, and ignores that.

// MutedListener is a listener's entry in the runtime poller's epoll set,
// as Mute removed it; its zero value restores nothing.
type MutedListener struct {
	rc  syscall.RawConn
	reg Registration
}

// Mute removes ln (a listener with a descriptor: *net.TCPListener,
// *net.UnixListener or one wrapping them) from the runtime poller's epoll
// set, and reports whether it did. Until Unmute, nothing may wait in
// ln.Accept.
func Mute(ln syscall.Conn) (MutedListener, bool) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return MutedListener{}, false
	}
	var r Registration
	ok := false
	if rc.Control(func(fd uintptr) {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		if r, ok = lookup(int(fd)); ok {
			ok = r.ctl(syscall.EPOLL_CTL_DEL, 0) == nil
		}
	}) != nil || !ok {
		return MutedListener{}, false
	}
	return MutedListener{rc: rc, reg: r}, true
}

// Unmute puts the listener's entry back in the runtime poller's epoll set
// unless the listener has been closed meanwhile. Connections already
// queued are reported at once (epoll does so for a descriptor added
// ready), so an Accept after Unmute sees them.
func (m MutedListener) Unmute() {
	if m.rc == nil {
		return
	}
	m.rc.Control(func(fd uintptr) {
		if int(fd) == m.reg.fd {
			m.reg.ctl(syscall.EPOLL_CTL_ADD, m.reg.events)
		}
	})
}

// Registered reports whether the runtime poller's epoll set has an entry
// for ln's descriptor: for tests and diagnostics. False too when ln is
// closed.
func Registered(ln syscall.Conn) bool {
	rc, err := ln.SyscallConn()
	if err != nil {
		return false
	}
	found := false
	rc.Control(func(fd uintptr) {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		unknown := poller.fd == 0
		if _, found = lookup(int(fd)); !found && unknown {
			poller.fd = 0 // not found by this one: look again next time
		}
	})
	return found
}
