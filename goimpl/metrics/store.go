// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Result slots of an op's counts: the answer that is a success, the one
// that is a refusal, and a failure.
const (
	resOK      = 0 // stored, hit
	resRefused = 1 // duplicate, miss
	resError   = 2
)

func result(err, refusal error) int {
	switch {
	case err == nil:
		return resOK
	case err == refusal || errors.Is(err, refusal):
		return resRefused
	}
	return resError
}

// Front names the protocol a wrapped store answers, which picks the op
// label values.
type Front uint8

const (
	// Distcache: op is add, get, remove, have or take.
	Distcache Front = iota
	// Sessiond: stunnel's sessiond datagrams; op is sessiond_set
	// (Add), sessiond_get (Get) or sessiond_del (Remove).
	Sessiond
)

// Store is a store.Store that counts each request into a Registry.
type Store struct {
	next                         store.Store
	c                            *reqCounters
	add, get, remove, have, take op
}

// WrapStore returns st wrapped so that every request is counted in
// distcache_requests_total{op,result} and timed in
// distcache_request_duration_seconds{op}. On a nil Registry it returns st.
func (r *Registry) WrapStore(st store.Store, f Front) store.Store {
	if r == nil {
		return st
	}
	w := &Store{next: st, c: &r.reqs, add: opAdd, get: opGet, remove: opRemove, have: opHave, take: opTake}
	if f == Sessiond {
		w.add, w.get, w.remove = opSessiondSet, opSessiondGet, opSessiondDel
		for _, o := range []op{opSessiondSet, opSessiondGet, opSessiondDel} {
			r.reqs.enabled[o].Store(true)
		}
	}
	return w
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() store.Store { return s.next }

// Add implements store.Store.
func (s *Store) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	t := monoNow()
	err := s.next.Add(ctx, id, data, ttl)
	s.c.done(s.add, stripeOf(id), t, result(err, store.ErrDuplicate))
	return err
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	t := monoNow()
	out, err := s.next.Get(ctx, id, dst)
	s.c.done(s.get, stripeOf(id), t, result(err, store.ErrNotFound))
	return out, err
}

// GetLife implements store.LifeGetter, counted as a GET.
func (s *Store) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	t := monoNow()
	out, left, err := store.GetLife(ctx, s.next, id, dst)
	s.c.done(s.get, stripeOf(id), t, result(err, store.ErrNotFound))
	return out, left, err
}

// Remove implements store.Store.
func (s *Store) Remove(ctx context.Context, id []byte) error {
	t := monoNow()
	err := s.next.Remove(ctx, id)
	s.c.done(s.remove, stripeOf(id), t, result(err, store.ErrNotFound))
	return err
}

// Have implements store.Store.
func (s *Store) Have(ctx context.Context, id []byte) error {
	t := monoNow()
	err := s.next.Have(ctx, id)
	s.c.done(s.have, stripeOf(id), t, result(err, store.ErrNotFound))
	return err
}

// Take implements store.Store.
func (s *Store) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	t := monoNow()
	out, err := s.next.Take(ctx, id, dst)
	s.c.done(s.take, stripeOf(id), t, result(err, store.ErrNotFound))
	return out, err
}

// Close implements store.Store.
func (s *Store) Close() error { return s.next.Close() }

// backendMetrics are the metrics of a backend behind dc_server.
type backendMetrics struct {
	errs [numKinds]prometheus.Counter
	dur  [5]prometheus.Observer // add, get, remove, have, take
}

// WrapBackend returns st wrapped so that its latency is observed in
// distcache_backend_request_duration_seconds{op} and its failures (not
// misses or duplicates) counted in distcache_backend_errors_total{kind}.
// On a nil Registry it returns st.
func (r *Registry) WrapBackend(st store.Store) store.Store {
	if r == nil {
		return st
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backend == nil {
		errs := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "backend_errors_total",
			Help: "Backend requests that failed, by kind (timeout, refused, protocol, tls, closed, unavailable, other).",
		}, []string{"kind"})
		dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "backend_request_duration_seconds",
			Help:    "Time the backend took to answer, by op.",
			Buckets: durationBuckets[:],
		}, []string{"op"})
		r.reg.MustRegister(errs, dur)
		b := &backendMetrics{}
		for i, n := range kindNames {
			b.errs[i] = errs.WithLabelValues(n)
		}
		for i := range b.dur {
			b.dur[i] = dur.WithLabelValues(opNames[i])
		}
		r.backend = b
	}
	return &backendStore{next: st, m: r.backend}
}

type backendStore struct {
	next store.Store
	m    *backendMetrics
}

func (b *backendStore) done(o op, t int64, err error) {
	b.m.dur[o].Observe(float64(monoNow()-t) / 1e9)
	if err != nil && err != store.ErrNotFound && err != store.ErrDuplicate &&
		!errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDuplicate) {
		b.m.errs[Kind(err)].Inc()
	}
}

func (b *backendStore) Unwrap() store.Store { return b.next }

func (b *backendStore) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	t := monoNow()
	err := b.next.Add(ctx, id, data, ttl)
	b.done(opAdd, t, err)
	return err
}

func (b *backendStore) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	t := monoNow()
	out, err := b.next.Get(ctx, id, dst)
	b.done(opGet, t, err)
	return out, err
}

func (b *backendStore) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	t := monoNow()
	out, left, err := store.GetLife(ctx, b.next, id, dst)
	b.done(opGet, t, err)
	return out, left, err
}

func (b *backendStore) Remove(ctx context.Context, id []byte) error {
	t := monoNow()
	err := b.next.Remove(ctx, id)
	b.done(opRemove, t, err)
	return err
}

func (b *backendStore) Have(ctx context.Context, id []byte) error {
	t := monoNow()
	err := b.next.Have(ctx, id)
	b.done(opHave, t, err)
	return err
}

func (b *backendStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	t := monoNow()
	out, err := b.next.Take(ctx, id, dst)
	b.done(opTake, t, err)
	return out, err
}

func (b *backendStore) Close() error { return b.next.Close() }
