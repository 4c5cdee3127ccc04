// SPDX-License-Identifier: Apache-2.0

// Package dcctx is the one implementation of DC_CTX, the client context
// (DC_CTX_new(3) with the doc/EDGES.md fixes): Ctx carries the pool,
// the retry, reget, the default lifetime and the timeouts, and backs the C
// library's DC_CTX_* functions (dc/ctx.go only converts arguments) and
// goimpl/client's Go API (through Ctx.Do).
//
// Transports: the semantics above sit on a transport that makes the
// connections. TransportCaller (the default, and the C library's) drives
// goimpl/nal sockets with a DC_PLUG on the calling thread, waiting in
// ppoll(2), so a C caller's thread never waits for the Go runtime's
// poller (and, when Options.RawWait says so, in system calls the runtime
// does not see, keeping its P); TransportNet uses Go's net package
// (goimpl/client). Every test of this package runs over both, and with
// raw waits.
//
// Concurrency: Ctx is safe for concurrent use by any number of
// goroutines (the original DC_CTX is not, yet Apache's worker and event
// MPMs share one context between threads). Concurrent operations never
// share a connection mid-exchange: a context keeps a pool of idle
// connections and each operation takes its own. A context without
// FlagPersistent keeps one too (see Ctx: checked before reuse, resent once
// when a kept connection dies unanswered), sparing Apache's
// mod_socache_dc a connect and an accept per operation (E-36).
//
// Time: every operation is bounded, its connect included: by 100 ms
// (Options.Timeout, env DISTCACHE_TIMEOUT_MS) adapting to the server's
// latency up to 2 s (goimpl/latency, shared with dc_client's upstream),
// or by the fixed Options.ConnectTimeout and IOTimeout when they are set.
// A timeout puts the Ctx on probation (probation.go): operations fail at
// once while a goroutine probes the server, until it answers. So a
// silent, stopped or black-holed server costs one operation about 100 ms
// and the others nothing (EDGES E-11).
//
// Where this differs from distcache 1.5 (all invisible on the wire except
// the first two):
//
//   - AddSession with a timeout under 1000 ms sends Options.DefaultLifetime
//     instead (default 300 s, env DISTCACHE_DEFAULT_LIFETIME in seconds).
//     httpd 2.4's mod_socache_dc passes only the 0..999 ms remainder of the
//     real lifetime; the original aborted the process for values <= 500.
//   - Request uids come from a per-context uint32 counter starting at 1,
//     not a process-wide one (uids are opaque to servers; E-8: wrapping is
//     harmless).
//   - Invalid arguments (empty id or data, oversized messages) return
//     failure instead of aborting (E-7).
//   - A rejected response never wedges a persistent context (E-9); a failed
//     reconnect does not crash (E-10); a persistent context without
//     FlagRetry reconnects on the operation after a failure (E-35).
//   - A failed operation of any kind clears the reget state (E-14); ids
//     over 64 bytes are sent but not remembered for reget (E-18).
//   - FlagPIDCheck updates the recorded pid after reconnecting, so a forked
//     child reconnects once, not on every operation (E-33).
//   - Writes cannot raise SIGPIPE (the Go runtime handles it, E-32); each
//     request is written with one system call.
//   - Addresses follow goimpl/nal's grammar (nal.ParseTarget); host names
//     are resolved once, in New, as the original does (IPv4 only for
//     IP:/IPv4:); IPv6:[addr]:port is an extension. FD: addresses are
//     refused: a context opens and closes its own connections.
package dcctx
