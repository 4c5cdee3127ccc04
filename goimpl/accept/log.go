// SPDX-License-Identifier: Apache-2.0

package accept

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Logger is where the daemons' library packages report: a *RateLog, or
// anything with the same Printf.
type Logger interface {
	Printf(format string, args ...any)
}

// stderrLog serves a Set or a daemon package given no Logger.
var stderrLog RateLog

// RateLog prints at most Burst lines per second to stderr and then says
// how many it suppressed, so a flood of bad clients cannot flood the log.
type RateLog struct {
	Burst int

	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

// Printf logs one line, unless over the rate.
func (r *RateLog) Printf(format string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.window) >= time.Second {
		if r.suppressed > 0 {
			fmt.Fprintf(os.Stderr, "Info, %d similar messages suppressed\n", r.suppressed)
		}
		r.window, r.n, r.suppressed = now, 0, 0
	}
	burst := r.Burst
	if burst <= 0 {
		burst = 10
	}
	if r.n >= burst {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.n++
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
