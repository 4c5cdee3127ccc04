// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Server is one distcache server an Upstream may use.
type Server struct {
	// Name names the server in logs (its distcache address).
	Name string
	// Dial makes a connection to the server within ctx's deadline. A TLS
	// or other wrapping dialer plugs in here.
	Dial func(ctx context.Context) (net.Conn, error)
}

// Options configure an Upstream. Zero values take the defaults.
type Options struct {
	// Servers, in order of preference: requests go to the first one that
	// is connected and answering.
	Servers []Server
	// Inflight caps the requests in flight on one server connection
	// (default 512, as the original's MULTIPLEXER_MAX_ITEMS; 1 for an
	// original 1.5 dc_server, which drops pipelined requests behind large
	// answers). A request waits for a slot within its Timeout.
	Inflight int
	// Timeout is how long a request waits for its server's answer before
	// the server is taken for stalled; 0 waits for ever. It is a floor:
	// the timeout in force is ten times the slowest answer of the last
	// 5 to 10 s, at most 20 Timeouts, and a request whose server is still
	// answering earlier requests (slow, not stalled), or whose own timer
	// fired late (this process starved of CPU), waits up to two more.
	// A request that times out fails with ErrDisconnected and puts the
	// server on probation: until it answers a probe, requests go to the
	// next server, or fail at once with ErrNoServer.
	Timeout time.Duration
	// DeadAfter drops a connection on probation whose probe has had no
	// answer for this long, and makes a new one (default 10 s).
	DeadAfter time.Duration
	// Retry is the interval between connection attempts to a server that
	// is down (default 5 s). Dial is given max(1 s, min(Retry, 5 s)).
	Retry time.Duration
	// Log receives one line per change of a server's state (connected,
	// lost, on probation, answering again). nil: a RateLog on stderr.
	Log accept.Logger
	// Metrics, when not nil, gets each server's state, reconnections and
	// errors (distcache_upstream_*), under the server's Name.
	Metrics *metrics.Registry
}

// Errors of an Upstream beyond the store's own; all wrap
// store.ErrUnavailable. Answer maps them onto the distcache protocol.
var (
	// ErrNoServer: no server is connected and answering; the request was
	// not sent anywhere.
	ErrNoServer = fmt.Errorf("upstream: no server available: %w", store.ErrUnavailable)
	// ErrDisconnected: the request was sent, but its connection failed or
	// its time ran out before the answer came, so whether it took effect
	// is unknown.
	ErrDisconnected = fmt.Errorf("upstream: no answer from the server: %w", store.ErrUnavailable)
	// errEmpty: the server answered with an empty payload (a dc_client
	// in front of it has no server).
	errEmpty = fmt.Errorf("upstream: the server has no store behind it: %w", store.ErrUnavailable)
)

// ResultError is an answer the distcache protocol allows but the store
// interface has no error for (for instance an ADD answered 0x01 by a
// server with a custom cache). Answer passes its code on unchanged.
type ResultError struct {
	Op   proto.Op
	Code byte
}

func (e *ResultError) Error() string {
	return fmt.Sprintf("upstream: the server answered %v with %s", e.Op, proto.ResultName(e.Code))
}

var disconnected = []byte{proto.ResultDisconnected}

// Answer is the store.Handler policy for a request an Upstream could not
// serve, as dc_client has always answered: 0x02 (DC_ERR_DISCONNECTED) for
// a request whose fate is unknown (ErrDisconnected), the server's own
// code for a ResultError, and an empty payload when there was no server
// (ErrNoServer), which the client library reads as a failed operation.
func Answer(_ proto.Op, err error) []byte {
	var re *ResultError
	switch {
	case errors.As(err, &re):
		return []byte{re.Code}
	case errors.Is(err, ErrDisconnected):
		return disconnected
	}
	return nil
}

// Upstream is a store.Store over distcache servers. See the package
// documentation.
type Upstream struct {
	links     []*link
	timeout   time.Duration
	deadAfter time.Duration
	retry     time.Duration
	log       accept.Logger
	stop      chan struct{}
	closeOnce sync.Once

	pmu sync.Mutex
	pl  evloop.Poller // Poll's

	sink NearSink // SetNear's: nil, no subscriptions
}

// New starts an Upstream: it connects to every server at once, in the
// background, and keeps the connections up until Close.
func New(o Options) (*Upstream, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("upstream: no server given")
	}
	for _, s := range o.Servers {
		if s.Dial == nil {
			return nil, fmt.Errorf("upstream: server %q has no Dial", s.Name)
		}
	}
	if o.Inflight <= 0 {
		o.Inflight = 512
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 10 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = new(accept.RateLog)
	}
	u := &Upstream{timeout: o.Timeout, deadAfter: o.DeadAfter, retry: o.Retry, log: o.Log, stop: make(chan struct{})}
	for _, s := range o.Servers {
		l := &link{u: u, srv: s, nextUID: 1, pending: make(map[uint32]pend),
			slots: make(chan struct{}, o.Inflight), kick: make(chan struct{}, 1), tried: make(chan struct{}),
			subKick: make(chan struct{}, 1),
			m:       o.Metrics.Upstream(s.Name)}
		if o.Timeout > 0 {
			l.lat.Init(o.Timeout, maxTimeoutFactor*o.Timeout)
		}
		l.dog = time.AfterFunc(time.Hour, l.watch)
		l.dog.Stop()
		u.links = append(u.links, l)
	}
	for _, l := range u.links {
		go l.run()
	}
	return u, nil
}

// Close drops every server connection; requests in flight fail with
// ErrDisconnected, later ones with ErrNoServer.
func (u *Upstream) Close() error {
	u.closeOnce.Do(func() {
		close(u.stop)
		for _, l := range u.links {
			l.mu.Lock()
			gen := l.gen
			l.mu.Unlock()
			l.fail(gen, errors.New("closing"), false)
			l.dog.Stop()
			if u.sink != nil {
				l.closeSub()
			}
		}
	})
	return nil
}

// WaitTried waits, at most d, until the first connection attempt to
// every server is over (connected or failed), so that requests do not
// find no server only because the process has just started. It reports
// whether they all are.
func (u *Upstream) WaitTried(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, l := range u.links {
		select {
		case <-l.tried:
		case <-t.C:
			return false
		}
	}
	return true
}

// InFlight is the number of requests sent to the servers and not yet
// answered.
func (u *Upstream) InFlight() int {
	n := 0
	for _, l := range u.links {
		n += len(l.slots)
	}
	return n
}

// Waiting is the number of requests waiting for an Inflight slot.
func (u *Upstream) Waiting() int {
	n := 0
	for _, l := range u.links {
		n += int(l.waiting.Load())
	}
	return n
}

// pick returns the first server that is connected and answering.
func (u *Upstream) pick() *link {
	for _, l := range u.links {
		if l.state.Load() == stateUp {
			return l
		}
	}
	return nil
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), timer: t}
}}

func (u *Upstream) do(ctx context.Context, c *call, op proto.Op, payload, dst []byte) ([]byte, error) {
	l := u.pick()
	if l == nil {
		return dst, ErrNoServer
	}
	return l.roundTrip(ctx, c, op, payload, dst)
}

// status maps a one-byte answer to ADD, REMOVE or HAVE onto the store's
// errors.
func status(op proto.Op, res []byte, err error) error {
	switch {
	case err != nil:
		return err
	case len(res) == 0:
		return errEmpty
	case len(res) > 1:
		return fmt.Errorf("upstream: the server answered %v with %d bytes: %w", op, len(res), ErrDisconnected)
	case res[0] == proto.ResultOK:
		return nil
	case res[0] == proto.ResultNotOK && op != proto.OpAdd:
		return store.ErrNotFound
	case res[0] == proto.AddErrMatching && op == proto.OpAdd:
		return store.ErrDuplicate
	case res[0] == proto.ResultDisconnected:
		return ErrDisconnected
	}
	return &ResultError{Op: op, Code: res[0]}
}

// Add implements store.Store.
func (u *Upstream) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	if err := check(id, data, ttl); err != nil {
		return err
	}
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	c.pbuf = proto.AppendAddRequest(c.pbuf[:0], uint32(ttl/time.Millisecond), id, data)
	res, err := u.do(ctx, c, proto.OpAdd, c.pbuf, c.rbuf[:0])
	c.rbuf = res[:0]
	return status(proto.OpAdd, res, err)
}

// Get implements store.Store.
func (u *Upstream) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	if !validID(id) {
		return dst, store.ErrNotFound
	}
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	res, err := u.do(ctx, c, proto.OpGet, id, dst)
	return getResult(res, dst, err)
}

// getResult maps the answer to a GET or TAKE (appended to dst) onto the
// store's results.
func getResult(res, dst []byte, err error) ([]byte, error) {
	switch {
	case err != nil:
		return dst, err
	case len(res) == len(dst):
		return dst, errEmpty
	case len(res) == len(dst)+1 && res[len(dst)] == proto.ResultNotOK:
		return dst, store.ErrNotFound
	}
	return res, nil
}

func (u *Upstream) oneByte(ctx context.Context, op proto.Op, id []byte) error {
	if !validID(id) {
		return store.ErrNotFound
	}
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	res, err := u.do(ctx, c, op, id, c.rbuf[:0])
	c.rbuf = res[:0]
	return status(op, res, err)
}

// Remove implements store.Store.
func (u *Upstream) Remove(ctx context.Context, id []byte) error {
	return u.oneByte(ctx, proto.OpRemove, id)
}

// Have implements store.Store.
func (u *Upstream) Have(ctx context.Context, id []byte) error {
	return u.oneByte(ctx, proto.OpHave, id)
}

func validID(id []byte) bool { return len(id) >= 1 && len(id) <= proto.MaxIDLen }

func check(id, data []byte, ttl time.Duration) error {
	if !validID(id) || len(data) < 1 || len(data) > proto.MaxDataLen ||
		ttl < 0 || ttl > proto.MaxExpiry*time.Millisecond ||
		proto.AddRequestSize(len(id), len(data)) > proto.MaxPayload {
		return store.ErrInvalid
	}
	return nil
}
