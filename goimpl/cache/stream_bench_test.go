// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// heapPeak samples the live heap every millisecond until stop and returns
// the highest value seen.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	ended := make(chan struct{})
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
	}
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-ended; read(); return peak.Load() }
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func heapNow() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// BenchmarkHandover is a re-exec's copy of the cache: n sessions (32-byte
// ids, 200 bytes of data) written by WriteTo into a pipe and read by
// ReadFrom into an empty cache. It reports the time per session and, as
// peak-MB, how far the heap rose above the source cache plus the copy it
// ends with (what the copy costs beyond the two caches themselves; both
// processes' heaps are this one here).
func BenchmarkHandover(b *testing.B) {
	for _, n := range []int{100000, 1000000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			now := time.Now()
			src := New(Config{})
			data := make([]byte, 200)
			for i := 0; i < n; i++ {
				src.Add(now, 600000, []byte(fmt.Sprintf("session-id-%021d", i)), data)
			}
			var worst float64
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				stop := heapPeak()
				r, w, err := os.Pipe()
				if err != nil {
					b.Fatal(err)
				}
				dst := New(Config{})
				done := make(chan error, 1)
				go func() {
					_, err := dst.ReadFrom(r)
					io.Copy(io.Discard, r)
					r.Close()
					done <- err
				}()
				if _, err := src.WriteTo(w); err != nil {
					b.Fatal(err)
				}
				w.Close()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				peak := stop()
				b.StopTimer()
				if got := dst.NumItems(now); got != n {
					b.Fatalf("%d sessions arrived of %d", got, n)
				}
				end := heapNow()
				worst = max(worst, float64(peak-min(peak, end))/(1<<20))
				runtime.KeepAlive(dst)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
			// CPU time of the whole process (both ends, the collector,
			// and the untimed checks): steadier than wall time on a
			// loaded machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(n), "cpu-ns/session")
			b.ReportMetric(worst, "peak-MB")
		})
	}
}
