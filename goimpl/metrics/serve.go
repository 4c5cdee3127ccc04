// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// ErrNotLoopback is returned by Listen for an address other hosts can
// reach, unless allowed.
var ErrNotLoopback = errors.New("metrics: not a loopback address")

// Listen opens the metrics listener on network ("tcp4", "tcp6" or "unix")
// and address. Metrics tell anyone who reads them how busy the cache is
// and which servers are down, so unless public is true an address that
// is not loopback (a wildcard, a routable IP, a name that resolves to
// one) is refused with ErrNotLoopback. A unix socket counts as loopback.
func Listen(network, address string, public bool) (net.Listener, error) {
	if !public && network != "unix" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if !isLoopback(host) {
			return nil, fmt.Errorf("%w: %s (other hosts could read the metrics)", ErrNotLoopback, address)
		}
	}
	return net.Listen(network, address)
}

func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "" {
		return false
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// The status page is one file with its script and style inline; the
// Content-Security-Policy allows exactly that script (by hash), inline
// style, and requests back to this server.
var (
	//go:embed status.html
	statusPage []byte
	statusCSP  = func() string {
		s := string(statusPage)
		i := strings.Index(s, "<script>")
		j := strings.Index(s, "</script>")
		if i < 0 || j < i {
			return "default-src 'none'"
		}
		h := sha256.Sum256([]byte(s[i+len("<script>") : j]))
		return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) +
			"'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
	}()
)

// Handler serves /metrics (the Prometheus text exposition), /status.json
// (the status page's samples) and / (the status page). A nil sampler
// serves an empty sample list.
func (r *Registry) Handler(s *Sampler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		s.WriteJSON(w)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.Write(statusPage)
	})
	return mux
}

// Server is a running metrics endpoint: the HTTP server and the sampler
// that feeds the status page.
type Server struct {
	http    *http.Server
	sampler *Sampler
	done    chan struct{}
	ln      net.Listener
	served  chan struct{} // closed when the accept loop has returned
	mu      sync.Mutex
	busy    map[net.Conn]bool // connections with a request coming or in progress
}

// Serve answers HTTP on ln (Handler) and samples the registry once a
// second for the status page, until Close.
func (r *Registry) Serve(ln net.Listener) *Server {
	s := &Server{sampler: NewSampler(r, 600), done: make(chan struct{}), ln: ln, served: make(chan struct{}), busy: map[net.Conn]bool{}}
	s.http = &http.Server{
		Handler:           r.Handler(s.sampler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ConnState: func(c net.Conn, st http.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if st == http.StateNew || st == http.StateActive {
				s.busy[c] = true
			} else {
				delete(s.busy, c)
			}
		},
	}
	go s.sampler.Run(time.Second, s.done)
	go func() {
		s.http.Serve(ln)
		close(s.served)
	}()
	return s
}

// Close stops the server and the sampler.
func (s *Server) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	// Stop accepting first, let the accept loop return, and answer the
	// requests of the connections accepted so far (for at most a second)
	// before Shutdown: it drops a request it reads once it has begun, and
	// after a re-exec the successor, which shares the socket, takes the
	// next connections.
	s.ln.Close()
	<-s.served
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.busy)
		s.mu.Unlock()
		if n == 0 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.http.Shutdown(ctx)
}

// Dump writes every non-zero distcache_* sample to w, one
// "Info, metric name{labels} value" line each (histograms as their _count
// and _sum), for the signal that asks for the counters in the log.
func (r *Registry) Dump(w io.Writer) error {
	if r == nil {
		return nil
	}
	mfs, err := r.reg.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	var b strings.Builder
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, Namespace+"_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			lbl := labelString(m.GetLabel())
			switch {
			case m.Histogram != nil:
				if n := m.Histogram.GetSampleCount(); n > 0 {
					fmt.Fprintf(&b, "Info, metric %s_count%s %d\n", name, lbl, n)
					fmt.Fprintf(&b, "Info, metric %s_sum%s %g\n", name, lbl, m.Histogram.GetSampleSum())
				}
			case m.Counter != nil:
				if v := m.Counter.GetValue(); v != 0 {
					fmt.Fprintf(&b, "Info, metric %s%s %g\n", name, lbl, v)
				}
			case m.Gauge != nil:
				if v := m.Gauge.GetValue(); v != 0 {
					fmt.Fprintf(&b, "Info, metric %s%s %g\n", name, lbl, v)
				}
			}
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
