// SPDX-License-Identifier: Apache-2.0

package server

import (
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
)

// Cache is a session store as the DC_SERVER object model uses it: the Go
// shape of the C DC_CACHE_cb table (the C layer adapts a caller's callbacks
// to it). *cache.Cache, the built-in cache, implements it.
//
// The server never reads the clock; every call carries the caller's now.
// An entry added at now with a timeout of t milliseconds expires at now
// truncated to the millisecond plus t, and is gone once now is strictly
// later than that (compared to the microsecond): live at the expiry
// instant, gone 1µs after it (doc/PROTOCOL.md §6). Reads never extend a
// lifetime.
//
// The server guarantees what DC_CACHE_cb implementations could rely on:
// Add is called with 1..64-byte ids, 1..32768 bytes of data and a timeout
// of at most 604800000 ms; Get, Remove and Have receive the raw request
// payload as the id (0..32768 bytes, not validated).
type Cache interface {
	// Add stores a copy of data under a copy of id for timeoutMS
	// milliseconds. It reports false if a live entry with that id exists
	// (the first data is kept) or the cache refuses the entry for any
	// other reason; the server answers both with 0x65.
	Add(now time.Time, timeoutMS uint32, id, data []byte) bool
	// Get copies min(length, len(dst)) bytes of the entry's data into dst
	// and returns the entry's full length; 0 means there is no live entry
	// (so empty data reads as a miss).
	Get(now time.Time, id, dst []byte) int
	// Remove deletes a live entry and reports whether there was one.
	Remove(now time.Time, id []byte) bool
	// Have reports whether a live entry exists.
	Have(now time.Time, id []byte) bool
	// NumItems is the number of live entries (expired ones are purged).
	NumItems(now time.Time) int
}

var _ Cache = (*cache.Cache)(nil)

// NewDefaultCache is the CacheFactory of the built-in cache: cache.NewDefault
// (64..60000 sessions, the original's eviction rule). The result is a
// *cache.Cache.
func NewDefaultCache(maxSessions int) (Cache, error) {
	c, err := cache.NewDefault(maxSessions)
	if err != nil {
		return nil, err
	}
	return c, nil
}
