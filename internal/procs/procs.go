// SPDX-License-Identifier: Apache-2.0

// Package procs sets how many Ps (GOMAXPROCS) the C libraries' engine runs
// with. A C program calls into the engine from its own threads, and a
// thread's call returns to C with its P still in the system-call state;
// with Ps to spare, Go's sysmon then polls (every 20 µs, backing off to
// 10 ms) until it takes the P back 10 ms later, and on the next call it
// wakes other threads again. In an Apache child that makes one cache lookup
// every few milliseconds, that is 10–18 sysmon wake-ups and 7 futex calls
// per lookup, more CPU than the lookup itself. With one P, sysmon takes the
// P back at its next tick and sleeps. One P is a bottleneck only when two C
// threads are in the engine at once (event and worker MPMs under load), so
// the first time that happens the runtime's default is restored, for the
// rest of the process. A GOMAXPROCS in the environment is left alone.
// Alone tells a caller that it is the only one inside (the C library's
// DC_CTX then waits in raw system calls: dcctx.Options.RawWait).
package procs

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

var (
	armed    atomic.Bool  // Init lowered GOMAXPROCS; the first overlap restores it
	restored atomic.Bool  // ... and it did
	active   atomic.Int32 // C threads inside Enter/Leave
	mu       sync.Mutex
)

// Init runs the engine on one P until Enter sees two callers at once. It
// does nothing when GOMAXPROCS is set in the environment or is 1 already.
func Init() {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) == 1 {
		return
	}
	runtime.GOMAXPROCS(1)
	armed.Store(true)
}

// Enter marks the start of a call that may block (a DC_CTX operation, a
// selector's wait); Leave its end.
func Enter() {
	if active.Add(1) > 1 && armed.Load() {
		restore()
	}
}

// Leave ends what Enter began.
func Leave() { active.Add(-1) }

// Alone reports whether the caller, between Enter and Leave, is the only
// C thread in the engine.
func Alone() bool { return active.Load() == 1 }

// Restored reports whether Init lowered GOMAXPROCS and an overlap has
// since given the default back (false when Init did nothing).
func Restored() bool { return restored.Load() }

func restore() {
	mu.Lock()
	defer mu.Unlock()
	if !armed.Load() {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	armed.Store(false)
	restored.Store(true)
}
