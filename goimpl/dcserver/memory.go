package dcserver

import (
	"os"
	"runtime/debug"
)

// Memory: -maxbytes is the process's memory for sessions, overheads
// included. The cache is given 7/8 of it, charged per entry with the
// allocator's size class and the index, slab and expiry-order slots
// (goimpl/cache); the rest is headroom for the garbage collector, which
// is told (GOMEMLIMIT) to keep the Go heap within -maxbytes plus RuntimeBase
// plus the connections' memory budget. What the process uses beyond that
// is its code and the kernel's socket buffers.

// RuntimeBase is the memory of an idle dc_server beyond its sessions and
// connections: runtime, code, data, goroutine stacks of the loops.
const RuntimeBase = 16 << 20

// CacheBytes is the cache's byte bound for a -maxbytes of maxBytes (0: none).
func CacheBytes(maxBytes int64) int64 { return maxBytes - maxBytes/8 }

// MemoryLimit is the Go memory limit derived from -maxbytes (0: none).
func MemoryLimit(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 0
	}
	return maxBytes + RuntimeBase
}

// LimitMemory sets the Go runtime's memory limit to MemoryLimit(maxBytes),
// unless the environment sets GOMEMLIMIT (the administrator's choice wins)
// or there is no byte bound.
func LimitMemory(maxBytes int64) {
	if l := MemoryLimit(maxBytes); l > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(l)
	}
}
