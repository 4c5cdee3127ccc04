// SPDX-License-Identifier: Apache-2.0

// Package cpumeter reports CPU time per operation in benchmarks. On a
// shared, loaded machine the process's CPU time (all threads, the garbage
// collector included) varies far less than the wall clock, so benchmarks
// report it next to ns/op as cpu-ns/op.
package cpumeter

import (
	"syscall"
	"testing"
	"time"
)

// Process is the user and system time this process has used so far.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Start resets the benchmark's timer and returns the function that, when
// deferred, stops it and reports the CPU time per operation since.
func Start(b *testing.B) func() {
	b.ResetTimer()
	start := Process()
	return func() {
		b.StopTimer()
		Report(b, Process()-start)
	}
}

// Report reports cpu as the CPU time of b.N operations.
func Report(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
