// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"fmt"
	"io"
	"time"
)

// progress prints the original's periodic line, plus hit and miss counts:
// when the session count changed (at most once a second), and every
// `every` operations when that is set.
type progress struct {
	every     int64
	last      time.Time
	lastOps   uint64
	lastItems int
	lastStep  uint64
}

func newProgress(every int64) *progress { return &progress{every: every, last: time.Now()} }

func (p *progress) maybeLog(w io.Writer, ops uint64, st Stats) {
	now := time.Now()
	items := st.Sessions
	print := now.Sub(p.last) >= time.Second && items != p.lastItems
	if p.every > 0 && ops/uint64(p.every) != p.lastStep {
		print = true
	}
	if !print {
		return
	}
	sign, diff := '=', 0
	if items > p.lastItems {
		sign, diff = '+', items-p.lastItems
	} else if items < p.lastItems {
		sign, diff = '-', p.lastItems-items
	}
	fmt.Fprintf(w, "Info, total operations = %7d  (+ %5d), total sessions = %5d  (%c%3d), hits = %d, misses = %d\n",
		ops, ops-p.lastOps, items, sign, diff, st.Hits, st.Misses)
	p.last, p.lastOps, p.lastItems = now, ops, items
	if p.every > 0 {
		p.lastStep = ops / uint64(p.every)
	}
}
