// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// A request and the answer the Loop waits for (dc_client's local request
// and its upstream's answer, a few tens of microseconds apart) do not
// make a Loop whose requests come 2 ms apart active when the answer's
// Handler says Passive: only the requests' own pace counts. Counted: 20
// such pairs arm the tick at most twice (a loaded machine may bring two
// requests close); without Passive each pair would.
func TestPassiveAnswersDoNotArmTheTick(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	l := newLoop(t, true)
	req := watchCounted(t, l)
	ans := &counted{t: t, fds: socketpair(t)}
	if err := l.Watch(ans.fds[0], handlerFunc(func() {
		l.Passive()
		var b [64]byte
		for {
			if n, _ := syscall.Read(ans.fds[0], b[:]); n <= 0 {
				break
			}
		}
		ans.calls.Add(1)
	})); err != nil {
		t.Fatal(err)
	}
	defer serveInBackground(t, l)()
	var n int64
	for try := 0; try < 3; try++ {
		a0 := armed.Load()
		for i := 0; i < 20; i++ {
			req.write()
			ans.write() // at once: well within activeGap
			time.Sleep(2 * time.Millisecond)
		}
		if n = armed.Load() - a0; n <= 2 {
			return
		}
	}
	t.Fatalf("20 requests 2 ms apart, each with its passive answer, armed the tick %d times", n)
}
