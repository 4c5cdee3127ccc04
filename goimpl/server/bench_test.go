package server

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
)

func benchKey(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf[24:], uint64(i))
	return buf
}

// BenchmarkCache measures add and get at 1k, 100k and 1M live entries; the
// cost per operation should not grow with the entry count.
func BenchmarkCache(b *testing.B) {
	data := make([]byte, 200)
	for _, n := range []int{1000, 100000, 1000000} {
		c := NewCache(Config{})
		key := make([]byte, 32)
		for i := 0; i < n; i++ {
			c.Add(t0, 3600000, benchKey(key, i), data)
		}
		b.Run(fmt.Sprintf("get/%d", n), func(b *testing.B) {
			dst := make([]byte, 32768)
			for i := 0; i < b.N; i++ {
				if c.Get(t0, benchKey(key, i%n), dst) == 0 {
					b.Fatal("miss")
				}
			}
		})
		b.Run(fmt.Sprintf("add+remove/%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				k := benchKey(key, n+i)
				c.Add(t0, 3600000, k, data)
				c.Remove(t0, k)
			}
		})
		b.Run(fmt.Sprintf("parallel-get/%d", n), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				k := make([]byte, 32)
				dst := make([]byte, 32768)
				i := 0
				for pb.Next() {
					c.Get(t0, benchKey(k, i%n), dst)
					i += 7
				}
			})
		})
	}
}

// BenchmarkFullCacheAdd measures adds into a full default cache (every add
// evicts), the case the original leaked memory on.
func BenchmarkFullCacheAdd(b *testing.B) {
	c, _ := NewDefaultCache(60000)
	key := make([]byte, 32)
	data := make([]byte, 200)
	for i := 0; i < 60000; i++ {
		c.Add(t0, uint32(3600000+i), benchKey(key, i), data)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Add(t0, uint32(7200000+i), benchKey(key, 60000+i), data)
	}
}

// BenchmarkMemoryPerEntry reports the heap bytes one 32-byte-id, 200-byte
// entry costs beyond its id and data (the basis of EntryOverhead).
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 200000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := NewCache(Config{})
	key := make([]byte, 32)
	data := make([]byte, 200)
	for i := 0; i < n; i++ {
		c.Add(t0, 3600000, benchKey(key, i), data)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n-232, "overhead-bytes/entry")
	runtime.KeepAlive(c)
	for i := 0; i < b.N; i++ {
	}
}
