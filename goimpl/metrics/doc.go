// SPDX-License-Identifier: Apache-2.0

// Package metrics counts what dc_server and dc_client do and serves it:
// Prometheus metrics at /metrics and a self-contained live status page at /
// (with the per-second samples it draws at /status.json).
//
// A Registry holds one daemon's metrics, all named distcache_*, in base
// units, with small fixed label sets (never a session id). The daemons
// feed it in three ways:
//
//   - WrapStore puts a store.Store wrapper in front of the store the
//     protocol is served from; it counts every request by op and result
//     and observes its duration. WrapBackend does the same for a backend
//     (Redis) behind dc_server, as backend metrics.
//   - Hooks the serving loops call: ConnAccepted, ConnRefused, ConnClosed,
//     BytesIn, BytesOut, HitAge, and an Upstream per server
//     with Up, Reconnect and Error.
//   - Functions read at scrape time: Cache reports the session cache's
//     sizes, limits and removals without touching its hot path;
//     UpstreamLevels the requests in flight and waiting upstream;
//     SealFailures the sealing store's failure count.
//
// Every hook is a no-op on a nil *Registry (and WrapStore returns the store
// unchanged), so a daemon started without -metrics pays nothing. Counter
// children are resolved when the Registry is made; the per-request path
// does no map lookup and no allocation.
//
// Serve answers HTTP on a listener; Listen opens one and refuses an address
// that is not loopback unless allowed. A Registry and its hooks are safe
// for concurrent use.
package metrics
