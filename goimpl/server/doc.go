// SPDX-License-Identifier: Apache-2.0

// Package server is the distcache server side (DC_SERVER_new(3),
// doc/PROTOCOL.md §6): the request handler over a cache, and the DC_SERVER
// object model that the C ABI exports.
//
//   - Cache is the Go shape of the C DC_CACHE_cb table; CacheFactory is
//     its cache_new. NewDefaultCache is the built-in cache of goimpl/cache
//     with the original default cache's contract (64..60000 sessions,
//     duplicate ids refused, when full the max/30 entries closest to
//     expiry are dropped), without its linear scans and its leak on
//     eviction (EDGES E-19, E-20).
//   - Handle answers one request message against a Cache, byte for byte
//     as the original server does.
//   - Server and Client are DC_SERVER and DC_CLIENT over goimpl/plug, with
//     the original's defects fixed: a request pipelined behind an
//     unfinished response waits instead of killing the connection (E-5),
//     Process works for clients the caller drives (E-34), answers queued
//     before corrupt input are sent before the close (E-38), and GET
//     responses are built in one buffer per server rather than 64 KB of
//     arrays per client (E-13).
//
// C function → Go:
//
//	DC_SERVER_set_cache(impl)              SetCache(factory)
//	DC_SERVER_set_default_cache()          SetDefaultCache()
//	DC_SERVER_new(max)                     New(max)
//	DC_SERVER_free(s)                      s.Free()
//	DC_SERVER_items_stored(s, now)         s.ItemsStored(now)
//	DC_SERVER_reset_operations(s)          s.ResetOperations()
//	DC_SERVER_num_operations(s)            s.NumOperations()
//	DC_SERVER_new_client(s, conn, flags)   s.NewClient(conn, flags)
//	DC_SERVER_del_client(c)                c.Delete()
//	DC_SERVER_process_client(c, now)       c.Process(now)
//	DC_SERVER_clients_io(s, now)           s.ClientsIO(now)
//	DC_SERVER_clients_empty(s)             s.ClientsEmpty()
//
// Time: nothing here reads the clock. Every call takes the caller's now;
// expiry is computed to the millisecond and compared to the microsecond
// (doc/PROTOCOL.md §6).
//
// Concurrency: the built-in cache is safe for concurrent use by many
// goroutines. A Server, its clients and their
// connections are used by one goroutine at a time, like the C API. The
// implementation chosen by SetCache is the one process-wide setting, as in
// the original.
package server
