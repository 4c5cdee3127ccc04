// SPDX-License-Identifier: Apache-2.0

package metrics

import "github.com/prometheus/client_golang/prometheus"

// CacheStats is what Cache reads from the session cache at each scrape.
type CacheStats struct {
	Sessions      int64 // sessions held
	Bytes         int64 // bytes they are charged (the -maxbytes accounting)
	SessionsLimit int64 // -sessions (0 = none, not exported)
	BytesLimit    int64 // -maxbytes (0 = none, not exported)
	Expired       uint64
	Evicted       uint64 // dropped before they expired, to make room
	Removed       uint64 // removed by a request
}

// Cache exports the session cache through read, called at each scrape
// (and each status sample): distcache_cache_sessions, _bytes, their
// _limit gauges and distcache_cache_removed_total{reason}. The cache's
// request path is not touched. Calling it again replaces nothing: only
// the first read is used.
func (r *Registry) Cache(read func() CacheStats) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cacheOn {
		return
	}
	r.cacheOn = true
	r.reg.MustRegister(&cacheCollector{read: read})
}

var (
	descSessions = prometheus.NewDesc(Namespace+"_cache_sessions", "Sessions in the cache.", nil, nil)
	descSessLim  = prometheus.NewDesc(Namespace+"_cache_sessions_limit", "Most sessions the cache holds (-sessions).", nil, nil)
	descBytes    = prometheus.NewDesc(Namespace+"_cache_bytes", "Bytes the cached sessions are charged: id, data and a fixed per-entry overhead.", nil, nil)
	descBytesLim = prometheus.NewDesc(Namespace+"_cache_bytes_limit", "Most bytes the cache holds (-maxbytes).", nil, nil)
	descRemoved  = prometheus.NewDesc(Namespace+"_cache_removed_total",
		"Sessions gone from the cache, by reason (expired; evicted: dropped before expiry to make room; removed: by a request).", []string{"reason"}, nil)
)

type cacheCollector struct{ read func() CacheStats }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessions
	ch <- descSessLim
	ch <- descBytes
	ch <- descBytesLim
	ch <- descRemoved
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.read()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
	if st.SessionsLimit > 0 {
		ch <- prometheus.MustNewConstMetric(descSessLim, prometheus.GaugeValue, float64(st.SessionsLimit))
	}
	if st.BytesLimit > 0 {
		ch <- prometheus.MustNewConstMetric(descBytesLim, prometheus.GaugeValue, float64(st.BytesLimit))
	}
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(st.Expired), "expired")
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(st.Evicted), "evicted")
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(st.Removed), "removed")
}
