// SPDX-License-Identifier: Apache-2.0

// Package upstream is a store.Store over distcache servers (dc_server, or
// any server of the distcache 1.5 protocol): where dc_client sends its
// local clients' requests.
//
// Each server gets one persistent connection that carries the requests of
// every caller pipelined, under fresh uids; the answers are matched back
// by uid. Requests that callers make while a write to the server is under
// way are queued and go out together in the next write (writer.go): one
// system call, and over TLS one record, for many requests. The caller
// that finds no one reading the connection reads the answers itself until
// its own is in (link.go), so a request that comes alone, as a resumed
// TLS handshake's lookup does, is written, answered and returned by one
// goroutine, with no hand-over between goroutines and no timer of its
// own: one watchdog per server times the requests out. Requests go
// to the first server of the list that is connected and answering; a
// server that is down is redialled every Retry.
//
// dc_client's event loop starts its requests instead (Start,
// store.Async), without waiting, and reads the connections that are
// plain sockets itself (Poll, evloop.Poller): the loop holds the reader's
// role, reads the answers that are in when the socket is readable
// (rawio.Conn.NoWait) and delivers them to the started calls' Done, so a
// request is written, answered and written back to its local client by
// one thread, and the idle connection needs no goroutine to notice the
// server's close. The runtime's poller then watches such a socket for
// nothing (rawio.Registration.Mute), and the loop's writes never wait:
// what the socket does not take is written by a goroutine. The requests
// the loop starts in one round (one wake-up's requests, store.Call.Batch)
// go to a server in one write at the round's end.
//
// A request that gets no answer within Timeout, while the server answers
// nothing else either, fails (ErrDisconnected),
// and its server is put on probation: requests go to the next server, or
// fail at once with ErrNoServer when there is none, while one probe (a
// HAVE) waits on the server's connection. The probe's answer puts the
// server back in use; a probe unanswered for DeadAfter drops the
// connection, and the next one is probed before use. So a stalled server
// costs one request its Timeout, not every request.
//
// The requests in flight on a connection that fails (closed, reset, a
// corrupt or unasked answer) fail with ErrDisconnected. Answer maps the
// errors onto the protocol as dc_client answers them.
//
// Near (near.go) is dc_client's near cache: a Store in front of the
// Upstream that answers GETs and HAVEs of the sessions this process added
// or read (GETLIFE, life.go) without the server, kept exact by the
// server's removal notices, to which each link subscribes on a
// connection of its own when its server announces them (subscribe.go,
// doc/EXTENSIONS.md).
package upstream
