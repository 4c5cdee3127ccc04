// SPDX-License-Identifier: Apache-2.0

package latency

import (
	"sync"
	"testing"
	"time"
)

func TestBound(t *testing.T) {
	const floor, ceil = 100 * time.Millisecond, 2 * time.Second
	b := New(floor, ceil)
	t0 := time.Unix(1000, 0)
	if got := b.Timeout(t0); got != floor || b.Answered() {
		t.Fatalf("before any answer: %v (answered %v), want the floor", got, b.Answered())
	}
	b.Observe(time.Millisecond, t0)
	if !b.Answered() {
		t.Fatal("not answered after an answer")
	}
	if got := b.Timeout(t0); got != floor {
		t.Fatalf("after a 1 ms answer: %v, want the floor", got)
	}
	b.Observe(30*time.Millisecond, t0.Add(time.Second))
	if got := b.Timeout(t0.Add(time.Second)); got != 300*time.Millisecond {
		t.Fatalf("after a 30 ms answer: %v, want 300ms", got)
	}
	// faster answers in the same window change nothing
	b.Observe(2*time.Millisecond, t0.Add(2*time.Second))
	if got := b.Timeout(t0.Add(2 * time.Second)); got != 300*time.Millisecond {
		t.Fatalf("after a faster answer: %v, want 300ms", got)
	}
	b.Observe(time.Second, t0.Add(3*time.Second))
	if got := b.Timeout(t0.Add(3 * time.Second)); got != ceil {
		t.Fatalf("after a 1 s answer: %v, want the ceiling", got)
	}
	// the next window still remembers the previous one's peak
	b.Observe(time.Millisecond, t0.Add(6*time.Second))
	if got := b.Timeout(t0.Add(6 * time.Second)); got != ceil {
		t.Fatalf("one window later: %v, want the ceiling", got)
	}
	// two windows later it is forgotten
	b.Observe(time.Millisecond, t0.Add(12*time.Second))
	if got := b.Timeout(t0.Add(12 * time.Second)); got != floor {
		t.Fatalf("two windows later: %v, want the floor", got)
	}
	// a slow answer, then silence for over two windows: the floor again
	b.Observe(50*time.Millisecond, t0.Add(13*time.Second))
	if got := b.Timeout(t0.Add(13 * time.Second)); got != 500*time.Millisecond {
		t.Fatalf("after a 50 ms answer: %v, want 500ms", got)
	}
	if got := b.Timeout(t0.Add(24 * time.Second)); got != floor {
		t.Fatalf("after 11 s without answers: %v, want the floor", got)
	}
	// and the first answer after the silence does not bring back the
	// stale peak
	b.Observe(time.Millisecond, t0.Add(25*time.Second))
	if got := b.Timeout(t0.Add(25 * time.Second)); got != floor {
		t.Fatalf("first answer after the silence: %v, want the floor", got)
	}
}

func TestLate(t *testing.T) {
	due := time.Unix(1000, 0)
	if Late(due, due.Add(20*time.Millisecond), 100*time.Millisecond) {
		t.Fatal("20 ms late on 100 ms counted as starved")
	}
	if !Late(due, due.Add(30*time.Millisecond), 100*time.Millisecond) {
		t.Fatal("30 ms late on 100 ms not counted as starved")
	}
}

func TestConcurrentObserve(t *testing.T) {
	b := New(time.Millisecond, time.Second)
	var wg sync.WaitGroup
	now := time.Now()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				b.Observe(time.Duration(g*1000+i)*time.Microsecond, now)
			}
		}(g)
	}
	wg.Wait()
	// the slowest was 7.999 ms: the timeout is 10 times it
	if got, want := b.Timeout(now), Factor*7999*time.Microsecond; got != want {
		t.Fatalf("timeout %v, want %v", got, want)
	}
}

func BenchmarkObserve(b *testing.B) {
	l := New(100*time.Millisecond, 2*time.Second)
	now := time.Now()
	l.Observe(time.Millisecond, now)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Observe(500*time.Microsecond, now)
		}
	})
}

// Known: not before the answers have come for a Window, nor after two
// Windows without one, nor until a Window after the answers resumed.
func TestKnown(t *testing.T) {
	b := New(100*time.Millisecond, 2*time.Second)
	t0 := time.Unix(1000, 0)
	if b.Known(t0) {
		t.Fatal("known before any answer")
	}
	b.Observe(time.Millisecond, t0)
	for _, c := range []struct {
		at    time.Duration // after t0
		known bool
	}{{0, false}, {Window - time.Millisecond, false}, {Window, true}, {2 * Window, true}, {2*Window + time.Millisecond, false}} {
		if got := b.Known(t0.Add(c.at)); got != c.known {
			t.Errorf("%v after one answer: known %v, want %v", c.at, got, c.known)
		}
	}
	// answers every second keep it known; the time of the first counts
	for s := 1; s <= 12; s++ {
		b.Observe(time.Millisecond, t0.Add(time.Duration(s)*time.Second))
	}
	if !b.Known(t0.Add(12 * time.Second)) {
		t.Fatal("not known with an answer every second for 12 s")
	}
	// after a silence of over two windows the answers start anew
	t1 := t0.Add(12*time.Second + 2*Window + time.Millisecond)
	b.Observe(time.Millisecond, t1)
	if b.Known(t1) || b.Known(t1.Add(Window-time.Millisecond)) || !b.Known(t1.Add(Window)) {
		t.Fatalf("after the silence: known %v, %v, %v; want false, false, true",
			b.Known(t1), b.Known(t1.Add(Window-time.Millisecond)), b.Known(t1.Add(Window)))
	}
}
