// SPDX-License-Identifier: Apache-2.0

// Package evloop lets one goroutine serve many sockets: a Loop is an epoll
// set of descriptors the caller owns (a listener, accepted connections),
// and Wait parks the goroutine in the runtime's network poller until one
// of them is readable, then calls its Handler; with RawWaits, it waits in
// epoll_pwait2 itself, in a raw system call that keeps the goroutine's P
// while events come at most a few milliseconds apart, bounded by a tick,
// and parks when they stop (see the notes above Wait;
// GOMAXPROCS-1 such Loops at most, so that the runtime keeps a P; on one
// P, RawWaitsWhile lets the only Loop hold it while its owner says
// nothing else needs it, and that Loop lets the runtime's poller run at
// its ticks). A daemon accepting a connection per request (Apache
// through dc_client, or straight to dc_server) so answers it from the
// accepting goroutine: no goroutine, net.Conn, poller registration or
// getsockname per connection, and every system call on the way (accept4,
// read, write, close, epoll_ctl) a raw one, which skips the scheduler's
// system call bookkeeping and the monitor thread wake-up it costs when
// the process comes back from idle.
//
// Descriptors are watched edge-triggered: a Handler reads until EAGAIN (or
// the end), or it is not called again for what is already there.
// Accept and Close are the raw accept4 and close a loop's owner needs;
// rawio.Conn.ResetFD reads and writes such a descriptor without blocking.
package evloop
