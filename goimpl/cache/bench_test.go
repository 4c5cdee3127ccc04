// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/internal/cpumeter"
)

// benchKey writes entry number i into the last 8 bytes of a 32-byte id
// (the size of a TLS session id).
func benchKey(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf[24:], uint64(i))
	return buf
}

var benchSizes = []int{1000, 100000, 1000000}

// filled returns a cache of n live 200-byte sessions, all added at t0 with
// the same one-hour lifetime (as a TLS server does).
func filled(cfg Config, n int) *Cache {
	c := New(cfg)
	key, data := make([]byte, 32), make([]byte, 200)
	for i := 0; i < n; i++ {
		c.Add(t0, 3600000, benchKey(key, i), data)
	}
	return c
}

// BenchmarkCacheGet is a hit on a cache of 1k, 100k and 1M entries; the
// cost should stay flat (beyond CPU cache misses).
func BenchmarkCacheGet(b *testing.B) {
	for _, n := range benchSizes {
		var c *Cache // built once, kept across b.N rounds
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			if c == nil {
				c = filled(Config{}, n)
			}
			key, dst := make([]byte, 32), make([]byte, proto.MaxPayload)
			defer cpumeter.Start(b)()
			for i := 0; i < b.N; i++ {
				if c.Get(t0, benchKey(key, i%n), dst) != 200 {
					b.Fatal("miss")
				}
			}
		})
	}
}

// BenchmarkCacheAdd adds into a full cache of 1k, 100k and 1M entries
// bounded by count: every add is new, and every n/30th add evicts a batch.
func BenchmarkCacheAdd(b *testing.B) {
	for _, n := range benchSizes {
		var c *Cache
		next := n
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			if c == nil {
				c = filled(Config{MaxSessions: n, Shards: 1}, n)
			}
			key, data := make([]byte, 32), make([]byte, 200)
			defer cpumeter.Start(b)()
			for i := 0; i < b.N; i++ {
				if !c.Add(t0, 3600000, benchKey(key, next), data) {
					b.Fatal("add refused")
				}
				next++
			}
		})
	}
}

// BenchmarkCacheAddRemove adds and removes one entry next to n live ones.
func BenchmarkCacheAddRemove(b *testing.B) {
	for _, n := range benchSizes {
		var c *Cache
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			if c == nil {
				c = filled(Config{}, n)
			}
			key, data := make([]byte, 32), make([]byte, 200)
			defer cpumeter.Start(b)()
			for i := 0; i < b.N; i++ {
				k := benchKey(key, n+i)
				c.Add(t0, 3600000, k, data)
				c.Remove(t0, k)
			}
		})
	}
}

// BenchmarkCacheGetParallel is BenchmarkCacheGet from GOMAXPROCS
// goroutines at once (the Go dc_server's goroutine per connection).
func BenchmarkCacheGetParallel(b *testing.B) {
	for _, n := range benchSizes {
		for _, shards := range []int{1, 16} {
			var c *Cache
			b.Run(fmt.Sprintf("items=%d/shards=%d", n, shards), func(b *testing.B) {
				if c == nil {
					c = filled(Config{Shards: shards}, n)
				}
				defer cpumeter.Start(b)()
				b.RunParallel(func(pb *testing.PB) {
					key, dst := make([]byte, 32), make([]byte, proto.MaxPayload)
					i := 0
					for pb.Next() {
						c.Get(t0, benchKey(key, i%n), dst)
						i += 7
					}
				})
			})
		}
	}
}

// BenchmarkDefaultCacheFullAdd adds into a full 60000-entry default cache,
// the case where the original leaked every evicted session (E-19).
func BenchmarkDefaultCacheFullAdd(b *testing.B) {
	c, _ := NewDefault(DefaultMaxSize)
	key, data := make([]byte, 32), make([]byte, 200)
	for i := 0; i < DefaultMaxSize; i++ {
		c.Add(t0, uint32(3600000+i), benchKey(key, i), data)
	}
	defer cpumeter.Start(b)()
	for i := 0; i < b.N; i++ {
		c.Add(t0, uint32(7200000+i), benchKey(key, DefaultMaxSize+i), data)
	}
}

// BenchmarkMemoryPerEntry reports the heap bytes one entry with a 32-byte
// id and 200 bytes of data costs beyond id and data (what EntryOverhead
// charges), at 200k entries.
// It measures once, whatever b.N is.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 200000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := filled(Config{}, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	for b.Loop() {
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n-232, "overhead-B/entry")
}
