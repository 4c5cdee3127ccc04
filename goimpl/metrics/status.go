// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"encoding/json"
	"io"
	"math"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Sample is one point of the status page's charts: rates over the
// interval since the previous sample, levels at its end. A nil pointer is
// a value that does not apply (no lookups in the interval, no limit, not
// this daemon).
type Sample struct {
	T             int64              `json:"t"`         // unix milliseconds
	Ops           float64            `json:"ops"`       // requests per second
	HitRatio      *float64           `json:"hit_ratio"` // hits / (hits + misses) of get and take
	Errors        float64            `json:"errors"`    // requests per second answered with an error
	P50           *float64           `json:"p50"`       // seconds
	P99           *float64           `json:"p99"`
	Sessions      *float64           `json:"sessions"`
	SessionsLimit *float64           `json:"sessions_limit"`
	Bytes         *float64           `json:"bytes"`
	BytesLimit    *float64           `json:"bytes_limit"`
	Evicted       float64            `json:"evicted"` // per second
	Expired       float64            `json:"expired"` // per second
	Conns         float64            `json:"conns"`
	InFlight      *float64           `json:"in_flight"`
	Waiting       *float64           `json:"waiting"`
	Upstreams     map[string]float64 `json:"upstreams,omitempty"` // server → 1 up, 0 down
	Heap          float64            `json:"heap"`                // Go heap in use, bytes
}

// Sampler keeps the last samples of a Registry in a ring, for the status
// page. Safe for concurrent use.
type Sampler struct {
	r *Registry

	mu   sync.Mutex
	ring []Sample
	next int
	full bool
	prev totals
	have bool
}

// NewSampler keeps up to n samples of r.
func NewSampler(r *Registry, n int) *Sampler {
	return &Sampler{r: r, ring: make([]Sample, n)}
}

// Run takes a sample every interval until done is closed.
func (s *Sampler) Run(interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.Take(time.Now())
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			s.Take(now)
		}
	}
}

// totals are the cumulative values a sample is the difference of.
type totals struct {
	t                 time.Time
	ops, hits, misses float64
	errors            float64
	evicted, expired  float64
	bounds, cum       []float64 // request duration buckets, summed over ops
	levels            Sample    // the gauges, already in sample form
	haveLat           bool
}

func (s *Sampler) read(now time.Time) totals {
	t := totals{t: now}
	mfs, _ := s.r.reg.Gather()
	for _, mf := range mfs {
		ms := mf.GetMetric()
		switch mf.GetName() {
		case Namespace + "_requests_total":
			for _, m := range ms {
				v := m.GetCounter().GetValue()
				t.ops += v
				op, res := label(m, "op"), label(m, "result")
				switch {
				case res == "error":
					t.errors += v
				case op == "get" || op == "take" || op == "sessiond_get":
					if res == "hit" {
						t.hits += v
					} else {
						t.misses += v
					}
				}
			}
		case Namespace + "_request_duration_seconds":
			for _, m := range ms {
				h := m.GetHistogram()
				bs := h.GetBucket()
				if t.bounds == nil {
					t.bounds = make([]float64, len(bs))
					t.cum = make([]float64, len(bs)+1)
					for i, b := range bs {
						t.bounds[i] = b.GetUpperBound()
					}
				}
				for i, b := range bs {
					if i < len(t.bounds) {
						t.cum[i] += float64(b.GetCumulativeCount())
					}
				}
				t.cum[len(t.bounds)] += float64(h.GetSampleCount())
				t.haveLat = true
			}
		case Namespace + "_cache_removed_total":
			for _, m := range ms {
				switch label(m, "reason") {
				case "evicted":
					t.evicted = m.GetCounter().GetValue()
				case "expired":
					t.expired = m.GetCounter().GetValue()
				}
			}
		case Namespace + "_cache_sessions":
			t.levels.Sessions = gauge(ms)
		case Namespace + "_cache_sessions_limit":
			t.levels.SessionsLimit = gauge(ms)
		case Namespace + "_cache_bytes":
			t.levels.Bytes = gauge(ms)
		case Namespace + "_cache_bytes_limit":
			t.levels.BytesLimit = gauge(ms)
		case Namespace + "_connections_open":
			t.levels.Conns = *gauge(ms)
		case Namespace + "_upstream_requests_in_flight":
			t.levels.InFlight = gauge(ms)
		case Namespace + "_upstream_requests_waiting":
			t.levels.Waiting = gauge(ms)
		case Namespace + "_upstream_up":
			t.levels.Upstreams = make(map[string]float64, len(ms))
			for _, m := range ms {
				t.levels.Upstreams[label(m, "server")] = m.GetGauge().GetValue()
			}
		case "go_memstats_heap_inuse_bytes":
			t.levels.Heap = *gauge(ms)
		}
	}
	return t
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func gauge(ms []*dto.Metric) *float64 {
	v := 0.0
	for _, m := range ms {
		v += m.GetGauge().GetValue()
	}
	return &v
}

// Take records a sample at now: rates since the previous Take. The first
// Take only sets the baseline.
func (s *Sampler) Take(now time.Time) {
	cur := s.read(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.prev, s.have
	s.prev, s.have = cur, true
	if !had {
		return
	}
	dt := cur.t.Sub(prev.t).Seconds()
	if dt <= 0 {
		return
	}
	smp := cur.levels
	smp.T = now.UnixMilli()
	smp.Ops = rate(cur.ops, prev.ops, dt)
	smp.Errors = rate(cur.errors, prev.errors, dt)
	smp.Evicted = rate(cur.evicted, prev.evicted, dt)
	smp.Expired = rate(cur.expired, prev.expired, dt)
	if dh, dm := cur.hits-prev.hits, cur.misses-prev.misses; dh+dm > 0 {
		r := dh / (dh + dm)
		smp.HitRatio = &r
	}
	if cur.haveLat && prev.haveLat && len(cur.cum) == len(prev.cum) {
		d := make([]float64, len(cur.cum))
		for i := range d {
			d[i] = cur.cum[i] - prev.cum[i]
		}
		smp.P50 = quantile(0.5, cur.bounds, d)
		smp.P99 = quantile(0.99, cur.bounds, d)
	}
	s.ring[s.next] = smp
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
}

func rate(cur, prev, dt float64) float64 {
	if cur < prev { // a counter does not go back; do not draw a negative rate
		return 0
	}
	return (cur - prev) / dt
}

// quantile estimates the q-quantile from cumulative bucket counts (cum has
// one more entry than bounds: the total), interpolating linearly within
// the bucket as Prometheus' histogram_quantile does; nil without
// observations. In the +Inf bucket it answers the highest bound.
func quantile(q float64, bounds, cum []float64) *float64 {
	total := cum[len(cum)-1]
	if total <= 0 {
		return nil
	}
	rank := q * total
	for i, b := range bounds {
		if cum[i] >= rank {
			lo, below := 0.0, 0.0
			if i > 0 {
				lo, below = bounds[i-1], cum[i-1]
			}
			v := b
			if n := cum[i] - below; n > 0 {
				v = lo + (b-lo)*(rank-below)/n
			}
			return &v
		}
	}
	v := bounds[len(bounds)-1]
	if len(bounds) == 0 {
		v = math.NaN()
	}
	return &v
}

// Samples returns the kept samples, oldest first.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sample
	if s.full {
		out = append(out, s.ring[s.next:]...)
	}
	return append(out, s.ring[:s.next]...)
}

// WriteJSON writes the status document: the daemon, its start time and
// the samples. A nil Sampler writes no samples.
func (s *Sampler) WriteJSON(w io.Writer) error {
	doc := struct {
		Program  string   `json:"program"`
		Version  string   `json:"version"`
		Started  int64    `json:"started"`
		Interval int64    `json:"interval_ms"`
		Samples  []Sample `json:"samples"`
	}{Interval: 1000, Samples: []Sample{}}
	if s != nil {
		doc.Program, doc.Version, doc.Started = s.r.program, s.r.version, s.r.started.UnixMilli()
		doc.Samples = s.Samples()
	}
	return json.NewEncoder(w).Encode(doc)
}
