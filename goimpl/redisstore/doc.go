// SPDX-License-Identifier: Apache-2.0

// Package redisstore is a store.Store on Redis (or Valkey): one server, a
// master set behind Redis Sentinel, or a Redis Cluster, so that sessions
// survive the loss of a host and a farm can share one replicated store.
//
// Each operation is one Redis command on a key made of a prefix and the
// session id (binary-safe): ADD is SET key data NX PX ttl (a live key keeps
// its first data and the add reports store.ErrDuplicate), GET is GET, REMOVE
// is DEL, HAVE is EXISTS and TAKE is GETDEL. Redis expires keys to the
// millisecond, which is distcache's own resolution. The distcache limits
// (ids 1..64 bytes, data 1..32768 bytes, lifetimes up to 7 days) are checked
// before Redis sees a request.
//
// Every operation has a deadline (Options.Timeout, 50 ms by default) and
// fails with an error wrapping store.ErrUnavailable and the cause when
// Redis does not answer in time, when a connection breaks, or while a
// Sentinel or Cluster failover is under way; callers answer such failures
// as a miss or a failed add. Reconnection and following a new master or a
// new slot map are automatic. The client is github.com/redis/rueidis, whose
// automatic pipelining puts the requests of many concurrent callers on a
// few connections.
//
// Addresses (ParseAddr): redis://[user@]host:port/db, rediss:// for TLS,
// redis-sentinel://host:port,host:port/master-name and
// redis-cluster://host:port,host:port. Passwords never appear in an
// address: Password reads one from a file or the environment.
//
// A Store is safe for concurrent use.
package redisstore
