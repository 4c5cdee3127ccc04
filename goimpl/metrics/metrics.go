// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/version"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric of ours.
const Namespace = "distcache"

// Options describe the daemon a Registry belongs to.
type Options struct {
	// Program is "dc_server" or "dc_client"; it picks the metric set
	// (the session cache's for the server, the upstream's for the client)
	// and is the build_info "program" label.
	Program string
	// Version is the build_info "version" label; "" takes
	// goimpl/version's.
	Version string
}

// Registry is one daemon's metrics. The zero value is not usable; a nil
// *Registry is (every hook does nothing).
type Registry struct {
	reg     *prometheus.Registry
	program string
	version string
	started time.Time

	reqs   reqCounters
	hitAge prometheus.Histogram

	connOpen     atomic.Int64
	connAccepted prometheus.Counter
	connRefused  [numRefuse]prometheus.Counter
	connClosed   [numClose]prometheus.Counter
	bytesIn      prometheus.Counter
	bytesOut     prometheus.Counter
	levels       atomic.Pointer[[2]func() int] // in flight, waiting

	mu        sync.Mutex
	backend   *backendMetrics
	upstreams map[string]*Upstream
	upVec     *upstreamVecs
	cacheOn   bool
	sealOn    bool
	nearOn    bool
}

// Label values. Each metric's label takes only the values listed with it.
var (
	opNames     = [numOps]string{"add", "get", "remove", "have", "take", "sessiond_set", "sessiond_get", "sessiond_del"}
	closeNames  = [numClose]string{"client", "idle", "partial_request", "corrupt", "tls", "response_timeout", "shutdown", "error"}
	refuseNames = [numRefuse]string{"limit"}
	kindNames   = [numKinds]string{"timeout", "refused", "protocol", "tls", "closed", "unavailable", "other"}
)

type op uint8

const (
	opAdd op = iota
	opGet
	opRemove
	opHave
	opTake
	opSessiondSet
	opSessiondGet
	opSessiondDel
	numOps
)

// CloseReason says why a connection ended, for ConnClosed.
type CloseReason uint8

const (
	CloseClient          CloseReason = iota // the peer closed it (or reset it)
	CloseIdle                               // idle longer than -idle
	ClosePartialRequest                     // a started request did not complete in time
	CloseCorrupt                            // a malformed frame
	CloseTLS                                // the TLS handshake or record layer failed
	CloseResponseTimeout                    // the peer did not take its answers
	CloseShutdown                           // the daemon is stopping
	CloseError                              // any other I/O error
	numClose
)

// RefuseReason says why a connection was refused, for ConnRefused.
type RefuseReason uint8

const (
	RefuseLimit RefuseReason = iota // at -maxconns / -maxclients
	numRefuse
)

// ErrorKind classifies upstream and backend errors (see Kind).
type ErrorKind uint8

const (
	KindTimeout     ErrorKind = iota // no answer in time
	KindRefused                      // connection refused
	KindProtocol                     // the peer broke the protocol
	KindTLS                          // TLS handshake or certificate failure
	KindClosed                       // the peer closed or reset the connection
	KindUnavailable                  // the store said it is unavailable, no cause given
	KindOther
	numKinds
)

func (k ErrorKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

// New makes the Registry of one daemon, with the Go runtime and process
// collectors and distcache_build_info.
func New(o Options) *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), program: o.Program, version: o.Version, started: time.Now()}
	if r.version == "" {
		r.version = version.String()
	}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the labels say which program, version and Go release this is.",
		ConstLabels: prometheus.Labels{"program": o.Program, "version": r.version, "goversion": runtime.Version()},
	})
	bi.Set(1)
	r.reg.MustRegister(bi)

	for _, o := range []op{opAdd, opGet, opRemove, opHave, opTake} {
		r.reqs.enabled[o].Store(true)
	}
	r.reg.MustRegister(&r.reqs)

	r.connAccepted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_accepted_total",
		Help: "Client connections accepted.",
	})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_refused_total",
		Help: "Client connections refused, by reason (limit: at the connection limit).",
	}, []string{"reason"})
	for i, n := range refuseNames {
		r.connRefused[i] = refused.WithLabelValues(n)
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "connections_closed_total",
		Help: "Client connections closed, by reason (client, idle, partial_request, corrupt, tls, response_timeout, shutdown, error).",
	}, []string{"reason"})
	for i, n := range closeNames {
		r.connClosed[i] = closed.WithLabelValues(n)
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "connections_open",
		Help: "Client connections open now.",
	}, func() float64 { return float64(r.connOpen.Load()) })
	r.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "received_bytes_total",
		Help: "Bytes read from client connections.",
	})
	r.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "sent_bytes_total",
		Help: "Bytes written to client connections.",
	})
	r.reg.MustRegister(r.connAccepted, refused, closed, open, r.bytesIn, r.bytesOut)

	switch o.Program {
	case "dc_client":
		r.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: Namespace, Name: "upstream_requests_in_flight",
				Help: "Requests sent upstream and not answered yet.",
			}, func() float64 { return r.level(0) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: Namespace, Name: "upstream_requests_waiting",
				Help: "Requests waiting for an in-flight slot (-inflight).",
			}, func() float64 { return r.level(1) }))
	default:
		r.hitAge = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "session_age_at_hit_seconds",
			Help:    "Age of a session when a get finds it: compare with the lifetime sessions are added with.",
			Buckets: ageBuckets,
		})
		r.reg.MustRegister(r.hitAge)
	}
	return r
}

const nDur = 17

// durationBuckets span an in-memory answer (microseconds) to a slow
// upstream (a second).
var durationBuckets = [nDur]float64{
	5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
	1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1,
}

// ageBuckets span a second to a day (the usual session lifetimes are
// 300 s to a few hours).
var ageBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}

// Prometheus returns the underlying registry (to register more
// collectors, or to Gather in tests).
func (r *Registry) Prometheus() *prometheus.Registry { return r.reg }

// Program is the daemon the Registry belongs to.
func (r *Registry) Program() string { return r.program }

// ConnAccepted counts an accepted client connection; it is open until
// ConnClosed.
func (r *Registry) ConnAccepted() {
	if r == nil {
		return
	}
	r.connOpen.Add(1)
	r.connAccepted.Inc()
}

// ConnRefused counts a connection refused before it was served.
func (r *Registry) ConnRefused(why RefuseReason) {
	if r == nil || why >= numRefuse {
		return
	}
	r.connRefused[why].Inc()
}

// ConnClosed counts the end of a connection ConnAccepted counted.
func (r *Registry) ConnClosed(why CloseReason) {
	if r == nil {
		return
	}
	if why >= numClose {
		why = CloseError
	}
	r.connOpen.Add(-1)
	r.connClosed[why].Inc()
}

// BytesIn counts bytes read from a client connection.
func (r *Registry) BytesIn(n int) {
	if r == nil || n <= 0 {
		return
	}
	r.bytesIn.Add(float64(n))
}

// BytesOut counts bytes written to a client connection.
func (r *Registry) BytesOut(n int) {
	if r == nil || n <= 0 {
		return
	}
	r.bytesOut.Add(float64(n))
}

// HitAge observes the age of a session a get found (dc_server).
func (r *Registry) HitAge(age time.Duration) {
	if r == nil || r.hitAge == nil {
		return
	}
	r.hitAge.Observe(age.Seconds())
}

// SealFailures exports distcache_seal_failures_total, read from count at
// each scrape: sealed session data that did not open (tampered with, or
// sealed with a key not in the key file). The first call counts.
func (r *Registry) SealFailures(count func() uint64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealOn {
		return
	}
	r.sealOn = true
	r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: "seal_failures_total",
		Help: "Sealed session data that did not open (tampered with, or sealed with a key not in the key file); answered as misses.",
	}, func() float64 { return float64(count()) }))
}

// NearStats are dc_client's near cache counters (goimpl/upstream.Near).
type NearStats struct {
	Hits, Misses, Flushes uint64
	Sessions              int
	Bytes                 int64 // what the sessions are charged (not exported)
}

// Near exports dc_client's near cache through read, called at each
// scrape: distcache_near_hits_total and _misses_total (GETs and HAVEs
// answered from it, and looked up in it but sent to the server),
// _flushes_total (everything forgotten: a subscription lost, another
// server or connection) and the sessions it holds.
func (r *Registry) Near(read func() NearStats) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nearOn {
		return
	}
	r.nearOn = true
	counter := func(name, help string, v func(NearStats) uint64) {
		r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: name, Help: help,
		}, func() float64 { return float64(v(read())) }))
	}
	counter("near_hits_total", "GETs and HAVEs answered from dc_client's near cache, without the server.",
		func(s NearStats) uint64 { return s.Hits })
	counter("near_misses_total", "GETs and HAVEs looked up in the near cache and sent to the server.",
		func(s NearStats) uint64 { return s.Misses })
	counter("near_flushes_total", "Times the near cache forgot everything (its subscription lost, another server or connection in use).",
		func(s NearStats) uint64 { return s.Flushes })
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "near_sessions", Help: "Sessions the near cache holds.",
	}, func() float64 { return float64(read().Sessions) }))
}

// UpstreamLevels gives the functions distcache_upstream_requests_in_flight
// and _waiting read at each scrape (dc_client): requests sent upstream and
// not answered, and requests waiting for an in-flight slot.
func (r *Registry) UpstreamLevels(inFlight, waiting func() int) {
	if r == nil {
		return
	}
	r.levels.Store(&[2]func() int{inFlight, waiting})
}

func (r *Registry) level(i int) float64 {
	if l := r.levels.Load(); l != nil && l[i] != nil {
		return float64(l[i]())
	}
	return 0
}

// ReadCloseReason is why a connection ends whose read of the next request
// failed with err: closing says the daemon is stopping, partial that part
// of a request had arrived (so a timeout is a partial request, not idle).
func ReadCloseReason(err error, closing, partial bool) CloseReason {
	var ne net.Error
	switch {
	case closing:
		return CloseShutdown
	case proto.IsCorrupt(err):
		return CloseCorrupt
	case errors.As(err, &ne) && ne.Timeout():
		if partial {
			return ClosePartialRequest
		}
		return CloseIdle
	case err == io.ErrUnexpectedEOF:
		return ClosePartialRequest
	case err == io.EOF, errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return CloseClient
	case Kind(err) == KindTLS:
		return CloseTLS
	}
	return CloseError
}

// WriteCloseReason is why a connection ends whose answer could not be
// written.
func WriteCloseReason(err error) CloseReason {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return CloseResponseTimeout
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return CloseClient
	case Kind(err) == KindTLS:
		return CloseTLS
	}
	return CloseError
}
