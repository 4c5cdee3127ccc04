// SPDX-License-Identifier: Apache-2.0

// Package cache is the in-memory session cache: a store.Store (through
// Store) and the shape of the C DC_CACHE_cb table (Cache's own methods,
// which take the caller's clock), used by dc_server, stunnel's sessiond,
// the DC_SERVER object model of goimpl/server and the C library.
//
// Files: cache.go is the public cache (configuration, the now-based
// operations, counters), store.go the store.Store view, export.go the
// copy of a cache's contents into another process, stream.go the same as
// a byte stream (a re-exec, a snapshot file), with the changes made while
// it is written, image.go the same without a copy, for a forked child
// (Freeze, Adopt); shard.go is one locked
// part of the cache, slab.go the pointer-free storage of a shard's entries,
// heap.go the expiry order, clock.go the wall clock the Store view reads.
//
// Time: an entry added at now with a timeout of t milliseconds expires at
// now truncated to the millisecond plus t, and is gone once now is strictly
// later than that (compared to the microsecond): live at the expiry
// instant, gone 1 µs after. Reads never extend a lifetime.
package cache
