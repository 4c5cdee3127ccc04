// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request counters are on every request's path, so they are not
// client_golang Counters and Histograms (a shared atomic each, a float CAS
// loop for the sum) but plain integer counters striped over a few cache
// lines, picked by the last byte of the session id, and summed at scrape
// time into the same exposition. Durations are integer nanoseconds read
// from the monotonic clock only: one clock read at each end of a request.

const nStripes = 8 // a power of two

// durBoundsNS are durationBuckets in nanoseconds.
var durBoundsNS = func() [nDur]int64 {
	var b [nDur]int64
	for i, s := range durationBuckets {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

// opCounts are one op's counts in one stripe: res by result slot (see
// opMetrics), the duration sum and per-bucket (not cumulative) counts,
// the last one above the highest bound.
type opCounts struct {
	res   [3]atomic.Uint64
	sumNS atomic.Uint64
	le    [nDur + 1]atomic.Uint64
}

type reqStripe struct {
	ops [numOps]opCounts
	_   [64]byte // keep the next stripe off this one's last cache line
}

type reqCounters struct {
	stripes [nStripes]reqStripe
	enabled [numOps]atomic.Bool // ops exported (sessiond ones once a sessiond store exists)
}

// epoch anchors monoNow; it is set once, at start-up.
var epoch = time.Now()

// monoNow reads the monotonic clock only (time.Now reads the wall clock
// too).
func monoNow() int64 { return int64(time.Since(epoch)) }

func stripeOf(id []byte) int {
	if len(id) == 0 {
		return 0
	}
	return int(id[len(id)-1]) & (nStripes - 1)
}

// done counts one request of op o on stripe s that started at start
// (monoNow) and ended with result slot res.
func (c *reqCounters) done(o op, s int, start int64, res int) {
	d := monoNow() - start
	oc := &c.stripes[s].ops[o]
	i := 0
	for i < len(durBoundsNS) && d > durBoundsNS[i] {
		i++
	}
	oc.le[i].Add(1)
	oc.sumNS.Add(uint64(max(d, 0)))
	oc.res[res].Add(1)
}

var (
	descRequests = prometheus.NewDesc(Namespace+"_requests_total",
		"Session cache requests answered, by op and result (hit, miss, stored, duplicate, error).", []string{"op", "result"}, nil)
	descDuration = prometheus.NewDesc(Namespace+"_request_duration_seconds",
		"Time the store took to answer a request, by op.", []string{"op"}, nil)
)

// resultNames gives the result label of each result slot of an op.
func resultNames(o op) [3]string {
	if o == opAdd || o == opSessiondSet {
		return [3]string{"stored", "duplicate", "error"}
	}
	return [3]string{"hit", "miss", "error"}
}

func (c *reqCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRequests
	ch <- descDuration
}

func (c *reqCounters) Collect(ch chan<- prometheus.Metric) {
	for o := range numOps {
		if !c.enabled[o].Load() {
			continue
		}
		var res [3]uint64
		var le [nDur + 1]uint64
		var sum uint64
		for s := range c.stripes {
			oc := &c.stripes[s].ops[o]
			for i := range res {
				res[i] += oc.res[i].Load()
			}
			for i := range le {
				le[i] += oc.le[i].Load()
			}
			sum += oc.sumNS.Load()
		}
		names := resultNames(o)
		for i, n := range names {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(res[i]), opNames[o], n)
		}
		buckets := make(map[float64]uint64, len(durationBuckets))
		var cum uint64
		for i, b := range durationBuckets {
			cum += le[i]
			buckets[b] = cum
		}
		cum += le[len(durationBuckets)]
		ch <- prometheus.MustNewConstHistogram(descDuration, cum, float64(sum)/1e9, buckets, opNames[o])
	}
}
