// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"os"
	"runtime/debug"
)

// Memory: -maxbytes is the process's memory for sessions, overheads
// included. The cache is given 7/8 of it, charged per entry with the
// allocator's size class and the index, slab and expiry-order slots
// (goimpl/cache); the rest is headroom for the garbage collector, which
// collects when the heap has grown by GCPercent (15%, GOGC) over what is
// live, 1/8 over a full cache, and is told (GOMEMLIMIT) to keep the Go heap
// within -maxbytes plus RuntimeBase plus what connections may hold
// (ConnBase each, and the -connmem budget).

// GCPercent is the garbage collector's target (GOGC) when -maxbytes bounds
// the cache: a full cache, 7/8 of -maxbytes, plus 15% is about -maxbytes.
const GCPercent = 15

// RuntimeBase is the memory of an idle dc_server beyond its sessions and
// connections: runtime, code, data, goroutine stacks of the loops.
const RuntimeBase = 16 << 20

// CacheBytes is the cache's byte bound for a -maxbytes of maxBytes (0: none).
func CacheBytes(maxBytes int64) int64 { return maxBytes - maxBytes/8 }

// MemoryLimit is the Go memory limit for a -maxbytes of maxBytes (0:
// none), maxConns connections (0: no limit, none) and a connection memory
// budget of connMem.
func MemoryLimit(maxBytes, maxConns, connMem int64) int64 {
	if maxBytes <= 0 || maxConns <= 0 || connMem < 0 {
		return 0
	}
	return maxBytes + RuntimeBase + maxConns*ConnBase + connMem
}

// LimitMemory sets the Go runtime's memory limit to MemoryLimit(...) and
// its GC target to GCPercent, each unless the environment sets it
// (GOMEMLIMIT, GOGC: the administrator's choice wins) or there is no bound.
func LimitMemory(maxBytes, maxConns, connMem int64) {
	if maxBytes > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if l := MemoryLimit(maxBytes, maxConns, connMem); l > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(l)
	}
}
