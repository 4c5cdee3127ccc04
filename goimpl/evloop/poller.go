// SPDX-License-Identifier: Apache-2.0

package evloop

import "syscall"

// A Poller is a Loop's owner that lets other code have a socket of its
// own read on the Loop's goroutine: dc_client's event loop reads its
// upstream connection, so that an answer is read and written back to the
// local client by the thread that waits for both, with no goroutine woken.
type Poller interface {
	// Attach has h.Ready called on the Loop's goroutine whenever the
	// socket of rc is readable, from once it is in the Loop's epoll set
	// (added inside rc.Control, so a closed socket is never added) until
	// it is closed, and h.Unpolled once when that ends otherwise (the
	// Loop stops, or the socket could not be added). It returns false
	// when no Loop runs: the caller reads the socket itself. owner
	// identifies the caller: a new Attach of the same owner replaces
	// its last.
	Attach(owner any, rc syscall.RawConn, h Polled) bool
}

// Polled is a socket's Handler in a Poller's Loop.
type Polled interface {
	Handler
	// Unpolled says the Loop no longer reads the socket.
	Unpolled()
}
