// SPDX-License-Identifier: Apache-2.0

package redistest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load is what the workers of RunFailover report to.
type Load struct {
	limit            time.Duration
	killedAt         atomic.Int64 // unix ns, 0 before the kill
	lastFail, lastOK atomic.Int64 // unix ns of the last failed and good write
	ops, worst       atomic.Int64
	stop             atomic.Bool
	mu               sync.Mutex
	slow, bad        []string
	slowest          time.Duration
	stall            func() time.Duration
	stopWatch        func()
}

// Op records one operation's duration.
func (l *Load) Op(name string, took time.Duration) {
	l.ops.Add(1)
	for w := l.worst.Load(); int64(took) > w && !l.worst.CompareAndSwap(w, int64(took)); w = l.worst.Load() {
	}
	if took > l.limit {
		l.mu.Lock()
		l.slow = append(l.slow, fmt.Sprintf("%s %v", name, took))
		l.slowest = max(l.slowest, took)
		l.mu.Unlock()
	}
}

// Write records whether a write (an add of a fresh id) was stored.
func (l *Load) Write(ok bool) {
	now := time.Now().UnixNano()
	if ok {
		l.lastOK.Store(now)
	} else if l.killedAt.Load() != 0 {
		l.lastFail.Store(now)
	}
}

// Bad records an answer that is not allowed; the test fails.
func (l *Load) Bad(format string, args ...any) {
	l.mu.Lock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf(format, args...))
	}
	l.mu.Unlock()
}

// Stopped tells a worker to return.
func (l *Load) Stopped() bool { return l.stop.Load() }

// Result is what RunFailover measured.
type Result struct {
	Recovery time.Duration // from the kill to the last failed write
	Ops      int64
	Worst    time.Duration // the slowest operation
	Stall    time.Duration // the longest this process was kept from running
}

func (r Result) String() string {
	return fmt.Sprintf("%d operations; writes failed for %v after the kill; slowest operation %v (the test process stalled up to %v)",
		r.Ops, r.Recovery, r.Worst, r.Stall)
}

// RunFailover runs workers goroutines of work(g, load) against a
// deployment, calls kill after 300 ms of traffic, and stops them once
// writes have succeeded for a second without a failure (at most 30 s
// after the kill). It fails t for every answer a worker reported as bad,
// and when an operation took longer than limit plus the longest time this
// process was kept from running (StallWatch): the deadline is the code's,
// a descheduled process is the machine's.
func RunFailover(t testing.TB, workers int, limit time.Duration, kill func(), work func(g int, l *Load)) Result {
	t.Helper()
	l := &Load{limit: limit}
	l.stall, l.stopWatch = StallWatch()
	defer l.stopWatch()
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(g, l)
		}()
	}
	time.Sleep(300 * time.Millisecond) // traffic before the kill
	l.killedAt.Store(time.Now().UnixNano())
	kill()
	deadline := time.Now().Add(30 * time.Second)
	for !l.stop.Load() {
		time.Sleep(50 * time.Millisecond) // polling interval
		if lf, lo := l.lastFail.Load(), l.lastOK.Load(); lf != 0 && lo-lf > int64(time.Second) {
			break
		}
		if time.Now().After(deadline) {
			l.Bad("writes still failing %v after the kill", time.Since(time.Unix(0, l.killedAt.Load())))
			break
		}
	}
	l.stop.Store(true)
	wg.Wait()
	l.stopWatch()
	for _, b := range l.bad {
		t.Error(b)
	}
	r := Result{Ops: l.ops.Load(), Worst: time.Duration(l.worst.Load()), Stall: l.stall()}
	if lf := l.lastFail.Load(); lf != 0 {
		r.Recovery = time.Duration(lf - l.killedAt.Load())
	}
	if len(l.slow) > 0 && l.slowest > limit+r.Stall {
		t.Errorf("%d operations over %v (the test process stalled at most %v): %v",
			len(l.slow), limit, r.Stall, l.slow[:min(len(l.slow), 10)])
	}
	if t.Failed() {
		t.FailNow()
	}
	return r
}
