// SPDX-License-Identifier: Apache-2.0

// Package rawio reads and writes a plain socket (TCP or unix) with raw
// non-blocking system calls, waiting in the runtime's network poller only
// when the socket has nothing to give or no room to take. It skips what
// net.Conn's Read and Write add around every system call: the scheduler's
// entry and exit bookkeeping, which also wakes the runtime's monitor thread
// each time the process comes back from idle. For a server answering one
// small request at a time that is a context switch per request saved
// (BenchmarkPingPong). Deadlines set on the net.Conn apply as before.
// Other connections (TLS, pipes) are read and written through net.Conn.
// A socket an event loop (goimpl/evloop) serves is read and written by its
// descriptor instead (ResetFD), never waiting: ErrWouldBlock says when a
// call would have to.
package rawio
