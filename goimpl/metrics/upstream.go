// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Upstream is the metrics of one upstream server of dc_client. Its
// methods do nothing on a nil *Upstream.
type Upstream struct {
	up         prometheus.Gauge
	reconnects prometheus.Counter
	errs       [numKinds]prometheus.Counter
}

type upstreamVecs struct {
	upG        *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	errs       *prometheus.CounterVec
}

// Upstream returns the metrics of the upstream server named server (its
// address as configured: a small fixed set). The same name gives the same
// *Upstream. It starts down.
func (r *Registry) Upstream(server string) *Upstream {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if u := r.upstreams[server]; u != nil {
		return u
	}
	if r.upVec == nil {
		v := &upstreamVecs{
			upG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: Namespace, Name: "upstream_up",
				Help: "1 while the connection to this upstream server is up, else 0.",
			}, []string{"server"}),
			reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "upstream_reconnects_total",
				Help: "Connections made to this upstream server after the first.",
			}, []string{"server"}),
			errs: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "upstream_errors_total",
				Help: "Failures talking to this upstream server, by kind (timeout, refused, protocol, tls, closed, unavailable, other).",
			}, []string{"server", "kind"}),
		}
		r.reg.MustRegister(v.upG, v.reconnects, v.errs)
		r.upVec = v
		r.upstreams = make(map[string]*Upstream)
	}
	u := &Upstream{up: r.upVec.upG.WithLabelValues(server), reconnects: r.upVec.reconnects.WithLabelValues(server)}
	for i, n := range kindNames {
		u.errs[i] = r.upVec.errs.WithLabelValues(server, n)
	}
	r.upstreams[server] = u
	return u
}

// Up sets whether the connection is up.
func (u *Upstream) Up(up bool) {
	if u == nil {
		return
	}
	if up {
		u.up.Set(1)
	} else {
		u.up.Set(0)
	}
}

// Reconnect counts a connection made after the first.
func (u *Upstream) Reconnect() {
	if u == nil {
		return
	}
	u.reconnects.Inc()
}

// Error counts a failure, classified by Kind.
func (u *Upstream) Error(err error) {
	if u == nil || err == nil {
		return
	}
	u.errs[Kind(err)].Inc()
}

// ErrorKind counts a failure of a known kind (KindProtocol for an answer
// that was not asked, say).
func (u *Upstream) ErrorKind(k ErrorKind) {
	if u == nil {
		return
	}
	if k >= numKinds {
		k = KindOther
	}
	u.errs[k].Inc()
}

// Kind classifies an error from talking to a server or backend.
func Kind(err error) ErrorKind {
	var ne net.Error
	var rhe tls.RecordHeaderError
	var ae tls.AlertError
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var cie x509.CertificateInvalidError
	var he x509.HostnameError
	switch {
	case err == nil:
		return KindOther
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.As(err, &rhe), errors.As(err, &ae), errors.As(err, &cve), errors.As(err, &uae),
		errors.As(err, &cie), errors.As(err, &he), strings.HasPrefix(err.Error(), "tls: "),
		strings.Contains(err.Error(), ": tls: "):
		return KindTLS
	case proto.IsCorrupt(err):
		return KindProtocol
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return KindClosed
	case errors.Is(err, store.ErrUnavailable):
		return KindUnavailable
	}
	return KindOther
}
