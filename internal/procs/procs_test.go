// SPDX-License-Identifier: Apache-2.0

package procs

import (
	"runtime"
	"sync"
	"testing"
)

// reset undoes Init and restore, with n Ps.
func reset(t *testing.T, n int) {
	t.Helper()
	prev := runtime.GOMAXPROCS(n)
	armed.Store(false)
	restored.Store(false)
	active.Store(0)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(prev)
		armed.Store(false)
		restored.Store(false)
	})
}

func TestOneCallerStaysOnOneP(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	reset(t, 4)
	Init()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("after Init GOMAXPROCS = %d, want 1", got)
	}
	for range 1000 {
		Enter()
		Leave()
	}
	if got := runtime.GOMAXPROCS(0); got != 1 || Restored() {
		t.Fatalf("one caller at a time: GOMAXPROCS = %d, restored %v; want 1, false", got, Restored())
	}
}

func TestOverlapRestoresDefault(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the default is 1 on one CPU: nothing to restore")
	}
	t.Setenv("GOMAXPROCS", "")
	reset(t, 4)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	Init()
	Enter() // a caller blocked in the engine ...
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ... and a second one from another thread
		defer wg.Done()
		Enter()
		Leave()
	}()
	wg.Wait()
	Leave()
	if got := runtime.GOMAXPROCS(0); got != def || !Restored() {
		t.Fatalf("after an overlap GOMAXPROCS = %d, restored %v; want the default %d, true", got, Restored(), def)
	}
}

func TestEnvironmentWins(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	reset(t, 3)
	Init()
	Enter()
	Enter()
	Leave()
	Leave()
	if got := runtime.GOMAXPROCS(0); got != 3 || Restored() {
		t.Fatalf("GOMAXPROCS=3 in the environment: got %d, restored %v", got, Restored())
	}
}

func TestAlone(t *testing.T) {
	reset(t, runtime.GOMAXPROCS(0))
	Enter()
	if !Alone() {
		t.Fatal("one caller: Alone() = false")
	}
	Enter()
	if Alone() {
		t.Fatal("two callers: Alone() = true")
	}
	Leave()
	if !Alone() {
		t.Fatal("back to one caller: Alone() = false")
	}
	Leave()
	if Alone() {
		t.Fatal("no caller: Alone() = true")
	}
}
