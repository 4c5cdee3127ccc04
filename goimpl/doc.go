// SPDX-License-Identifier: Apache-2.0

// Package goimpl is the root of the pure-Go distcache implementation (no cgo).
//
// Its sub-packages are the wire protocol (proto), the libnal object model
// (nal), the DC_PLUG message layer (plug), the Go client (client) and the
// one DC_CTX under it (client/dcctx), the in-memory session cache
// (cache), the DC_SERVER object model over a cache (server), stunnel's sessiond datagram protocol over a store (sessiond),
// the accept loop and rate-limited log the daemons share (accept), the
// passing of live connections to a re-executed daemon (handover), the raw
// socket reads and writes of their connections (rawio), the event loop
// that serves many sockets from one goroutine (evloop), and the
// Store interface every place sessions are kept implements, with the
// protocol handler over it and its conformance suite (store,
// store/storetest); the Redis store for standalone, Sentinel and Cluster
// deployments with its test harness (redisstore, redisstore/redistest);
// the daemons as library packages: dc_server's serving loop (dcserver),
// dc_client's distcache upstream store over one or more dc_servers
// (upstream) and its local side serving applications from a store (proxy);
// the sealing store wrapper (seal) and the TLS configurations of the
// distcache link (tlsconf, with tlsconf/tlstest making test certificates);
// and the daemons' Prometheus metrics and live status page (metrics). The
// command-line tools use them directly; the C ABI engine exports them.
package goimpl
