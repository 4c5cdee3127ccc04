// SPDX-License-Identifier: Apache-2.0

package latency

import (
	"sync"
	"sync/atomic"
	"time"
)

// The adaptation: the timeout is Factor times the slowest answer of the
// last one to two Windows.
const (
	Factor = 10
	Window = 5 * time.Second
	// MaxExtensions bounds how many more timeouts a request may wait
	// when its timer fired late (see Late).
	MaxExtensions = 2
)

// Bound is the adaptive timeout of one server. The zero Bound is not
// usable: make it with New. Its methods are safe for concurrent use.
type Bound struct {
	floor, ceil time.Duration

	cur atomic.Int64 // the timeout in force (ns), 0 before the first answer
	at  atomic.Int64 // when cur was last set (unix ns)
	// first: when the answers b has seen without a gap of over two
	// Windows began (unix ns; see Known)
	first atomic.Int64
	// peak mirrors curPeak and start windowStart for Observe's lock-free
	// fast path: an answer no slower than the window's peak changes
	// nothing but the time stamp.
	peak  atomic.Int64
	start atomic.Int64

	mu                sync.Mutex
	curPeak, prevPeak time.Duration
	windowStart       time.Time
}

// New returns a Bound between floor and ceil (ceil >= floor > 0).
func New(floor, ceil time.Duration) *Bound {
	b := &Bound{}
	b.Init(floor, ceil)
	return b
}

// Init makes b a fresh Bound between floor and ceil (for a Bound
// embedded in another value). It must not race with b's other methods.
func (b *Bound) Init(floor, ceil time.Duration) {
	*b = Bound{floor: floor, ceil: max(ceil, floor)}
}

// Floor returns the floor b was made with.
func (b *Bound) Floor() time.Duration { return b.floor }

// Ceil returns the ceiling b was made with.
func (b *Bound) Ceil() time.Duration { return b.ceil }

// Observe takes the duration d of one answer that came at now.
func (b *Bound) Observe(d time.Duration, now time.Time) {
	ns := now.UnixNano()
	if int64(d) <= b.peak.Load() && ns-b.start.Load() <= int64(Window) {
		b.at.Store(ns)
		return
	}
	b.mu.Lock()
	// (the fast path above never sees a stale at: start <= at)
	if last := b.at.Load(); last == 0 || ns-last > int64(2*Window) {
		b.first.Store(ns)
	}
	if since := now.Sub(b.windowStart); since > 2*Window {
		b.prevPeak, b.curPeak, b.windowStart = 0, 0, now // both windows are old
		b.start.Store(ns)
	} else if since > Window {
		b.prevPeak, b.curPeak, b.windowStart = b.curPeak, 0, now
		b.start.Store(ns)
	}
	b.curPeak = max(b.curPeak, d)
	b.peak.Store(int64(b.curPeak))
	t := min(max(Factor*max(b.curPeak, b.prevPeak), b.floor), b.ceil)
	b.cur.Store(int64(t))
	b.at.Store(ns)
	b.mu.Unlock()
}

// Answered reports whether b has ever observed an answer.
func (b *Bound) Answered() bool { return b.at.Load() != 0 }

// Known reports whether b's timeout at now rests on what the server
// showed: an answer came in the last two Windows, and the answers have
// come, without a gap of over two Windows, for at least one Window. One
// answer, or a few of a moment, say little of the next: an Apache child
// forked in a graceful restart saw dc_client answer in under 10 ms at
// first and in over 100 ms a moment later, while the machine was busy
// starting the new generation. A caller that knows the server no better
// than a new one waits as long as for a new one until Known.
func (b *Bound) Known(now time.Time) bool {
	last := b.at.Load()
	ns := now.UnixNano()
	return last != 0 && ns-last <= int64(2*Window) && ns-b.first.Load() >= int64(Window)
}

// Timeout returns the timeout in force at now: the floor when no answer
// came in the last two windows.
func (b *Bound) Timeout(now time.Time) time.Duration {
	t := time.Duration(b.cur.Load())
	if t <= 0 || now.UnixNano()-b.at.Load() > int64(2*Window) {
		return b.floor
	}
	return t
}

// Late reports whether a timer of t that was due at due and noticed at
// now fired late enough (by over a quarter of t) to say that this process
// was starved of the CPU rather than that the server is silent.
func Late(due, now time.Time, t time.Duration) bool {
	return now.Sub(due) > t/LateDivisor
}

// LateDivisor: a timer of t is late when it fired over t/LateDivisor
// after it was due (see Late).
const LateDivisor = 4
