// SPDX-License-Identifier: Apache-2.0

// Package dcserver is dc_server's serving loop as a library: it accepts
// distcache connections and answers them from a store.Store through the
// protocol Handler (goimpl/store), optionally serves stunnel's sessiond
// datagrams from the same store, prints the original's progress line, and
// shuts down answering what it has received. cmd/dc_server parses options
// and wires a store (the in-memory cache, or another store.Store) into it.
//
// Plaintext connections are accepted and served by event loops (one per
// P, goimpl/evloop) when the store never blocks (the in-memory cache; a
// loop waiting for Redis would stall all its connections), while they are
// between requests or answering requests that have arrived whole; one that
// has to wait in the middle of a request or for room to write leaves its
// loop for a goroutine of its own, as TLS connections and handed-over ones
// always have (one whose request comes in pieces waits in its loop for
// the rest for 5 ms first, and has the goroutine for that request only).
// A loop waits in epoll_pwait2 itself, in a raw system call
// that keeps its P while requests keep coming, a few milliseconds apart at
// most, and parks in the runtime's poller when they stop
// (evloop.Loop.RawWaits; on one P, with Options.HoldLastP, while no
// connection is served by a goroutine):
// three system calls per request of a persistent client. TCP connections get their
// socket options from the listener, which queues each only once its first
// bytes have come (evloop.DeferAccept). Either way the same code
// reads requests in order and answers them in order; pipelined requests
// are answered in one batch write. A request the Handler answers by closing (an ADD shorter
// than 8 bytes, an unknown operation) or a malformed stream loses its
// connection, never the server; each is logged, rate-limited.
//
// A re-exec hands the connections to the new process (HandOver here,
// Adopt there): each goes with its unwritten answers and the request bytes
// read but not answered, so a client's connection outlives the process.
//
// Files: server.go is the Server and its options, conn.go one connection
// (reader, batching, deadlines), loop.go the event loops, limits.go the bounds on what connections
// hold and how many there are, memory.go how -maxbytes becomes the cache's
// bound and the Go memory limit, progress.go the periodic log line,
// notify.go the subscriptions to removal notices (Options.Notify,
// doc/EXTENSIONS.md): a subscribed connection leaves the loops for a
// writer and a reader goroutine of its own.
package dcserver
