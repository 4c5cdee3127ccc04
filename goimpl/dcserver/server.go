// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/sessiond"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
)

// DefaultFrameTimeout is Options.FrameTimeout's default.
const DefaultFrameTimeout = 10 * time.Second

// Options configure a Server. Store is required; the zero value of every
// other field is a sensible default.
type Options struct {
	// Store is where sessions are kept.
	Store store.Store
	// MinLifetime, Unavailable and Features configure the protocol
	// Handler (see store.Handler): -minlifetime, the answer when the
	// store fails (nil: a miss), the extensions announced (nil: none).
	MinLifetime time.Duration
	Unavailable store.UnavailablePolicy
	Features    func() uint32
	// RequestTimeout bounds the store calls of one request (0: only the
	// store's own bounds); a store past it answers as unavailable.
	RequestTimeout time.Duration
	// Idle closes a connection that sends nothing for this long (0:
	// never).
	Idle time.Duration
	// FrameTimeout closes a connection whose started request does not
	// complete, or whose answers are not taken, within it (0:
	// DefaultFrameTimeout). Shutdown waits at most this long plus a
	// second for connections to finish.
	FrameTimeout time.Duration
	// MaxConns caps the simultaneous connections (0: no limit). At the
	// cap a new connection replaces a stalled or idle one (limits.go),
	// or, when every connection is busy, is logged and closed.
	MaxConns int
	// ConnMemory is the budget for what connections hold beyond their
	// base buffers (ConnBase each): queued answers and payloads of large
	// sessions (0: DefaultConnMemory; negative: no budget). Past it the
	// connections whose clients do not take their answers are closed.
	ConnMemory int64
	// Sessiond, when set, is a UDP socket on which stunnel's sessiond
	// protocol is served from Store; Run closes it at shutdown.
	Sessiond *net.UDPConn
	// Progress also prints the progress line every Progress operations
	// (0: only when the session count changes, at most once a second).
	Progress int64
	// Stats reports the session count and hit and miss counters for the
	// progress and shutdown lines (nil: no session count, and the hits
	// and misses of this Server's GETs).
	Stats func() Stats
	// TLS, when set, serves TLS on every connection: the handshake is
	// bounded by FrameTimeout and a refused one is logged (naming the
	// peer and the cause) and closed.
	TLS *tlsconf.Server
	// Log receives the rate-limited warnings (nil: a RateLog on stderr);
	// Info receives the progress and shutdown lines (nil: stderr).
	Log  accept.Logger
	Info io.Writer
	// Loops is how many event loops serve the plaintext connections of
	// a Serve (loop.go; 0: GOMAXPROCS; negative: none, a goroutine per
	// connection, as TLS connections always have). A loop calls the
	// store itself, so loops serve only a Store that never blocks
	// (store.NeverBlocks: the in-memory cache); with any other (Redis)
	// every connection has a goroutine.
	Loops int
	// Metrics, when not nil, counts every request (distcache and
	// sessiond), the connections and their bytes.
	Metrics *metrics.Registry
	// Notify announces proto.FeatureNotify and serves subscriptions to
	// removal notices (notify.go): for a Store no other process changes
	// (the in-memory cache), since a removal elsewhere would send no
	// notice. It also announces proto.FeatureGetLife, answered from the
	// Store's GetLife (store.LifeGetter), with which a subscriber keeps
	// copies of the sessions it reads.
	Notify bool
	// NearMap, when set, is kept with every session the Store adds,
	// removes or has taken, and handed (read-only) to each client on a
	// unix socket that GETs proto.NearMapID (nearmap.go): only for a
	// Store no other process changes.
	NearMap *nearmap.Map
	// NoticeBacklog is what a subscriber may have waiting to be written
	// before it is closed (0: DefaultNoticeBacklog). What subscribers have
	// waiting also counts against ConnMemory, and there are at most
	// MaxConns subscribers.
	NoticeBacklog int
	// HoldLastP lets the loop of a process with one P (GOMAXPROCS 1, as
	// when dc_server is pinned to one CPU) wait raw, keeping the P,
	// while no connection is served by a goroutine
	// (evloop.RawWaitsWhile): for a process in which nothing else serves
	// clients (cmd/dc_server without sessiond), since what else waits for
	// a socket meanwhile (a metrics scrape) is woken at the loop's ticks
	// only, up to a millisecond late.
	HoldLastP bool
}

// Stats are the counters the progress line prints.
type Stats struct {
	Sessions     int
	Hits, Misses uint64
}

// Server serves the distcache protocol from a store. Use New.
type Server struct {
	o      Options
	h      store.Handler
	log    accept.Logger
	set    accept.Set
	ops    atomic.Uint64
	hits   atomic.Uint64
	misses atomic.Uint64
	sd     *sessiond.Server
	m      *metrics.Registry

	loops      atomic.Int32 // event loops started (loop.go)
	loopSet    atomic.Pointer[[]*srvLoop]
	limits     registry
	connMem    atomic.Int64 // bytes connections hold beyond their base buffers
	connBudget int64
	send       HandOff // set by HandOver; read once set.HandingOff()
	hub        *hub    // the subscribers to removal notices (Notify)
	// the near map (Options.NearMap; nearmap.go) and its renewals
	nm             *nearmap.Map
	nmStop, nmDone chan struct{}
	nmOnce         sync.Once
}

// HandOff passes a connection to the process that replaces this one, with
// the answers not yet written (out) and the request bytes read but not yet
// answered (in); handover.Sender.Send is one.
type HandOff func(nc net.Conn, out, in []byte) error

// New returns a Server; Run or Serve runs it.
func New(o Options) *Server {
	if o.FrameTimeout <= 0 {
		o.FrameTimeout = DefaultFrameTimeout
	}
	if o.Info == nil {
		o.Info = os.Stderr
	}
	var hb *hub
	if o.NearMap != nil {
		o.Store = newMapStore(o.Store, o.NearMap)
	}
	if o.Notify {
		hb = &hub{backlog: o.NoticeBacklog}
		if hb.backlog <= 0 {
			hb.backlog = DefaultNoticeBacklog
		}
		o.Store = notifyStore{wrapped{o.Store}, hb}
		features := o.Features
		o.Features = func() uint32 {
			bits := proto.FeatureNotify | proto.FeatureGetLife
			if features != nil {
				bits |= features()
			}
			return bits
		}
	}
	s := &Server{o: o, log: o.Log, m: o.Metrics, hub: hb, h: store.Handler{
		Store: o.Metrics.WrapStore(o.Store, metrics.Distcache), MinLifetime: o.MinLifetime, Unavailable: o.Unavailable, Features: o.Features,
	}}
	if s.log == nil {
		s.log = new(accept.RateLog)
	}
	if hb != nil {
		hb.s = s
	}
	if s.nm = o.NearMap; s.nm != nil {
		s.shareMap()
	}
	// s.limits enforces MaxConns; the Set bounds what waits for it:
	// accepted connections whose goroutine has not run yet, and closed
	// ones whose goroutine has not yet ended.
	s.set = accept.Set{Log: s.log}
	if o.MaxConns > 0 {
		s.set.Max = o.MaxConns + o.MaxConns/8 + 16
		s.set.OnFull = func(nc net.Conn) {
			s.m.ConnRefused(metrics.RefuseLimit)
			s.log.Printf("Warning, rejected connection from %s: already at -maxconns %d", peer(nc), o.MaxConns)
		}
	}
	switch {
	case o.ConnMemory == 0:
		s.connBudget = DefaultConnMemory
	case o.ConnMemory < 0:
		s.connBudget = 1<<63 - 1
	default:
		s.connBudget = o.ConnMemory
	}
	if o.Sessiond != nil {
		s.sd = sessiond.New(o.Metrics.WrapStore(o.Store, metrics.Sessiond), sessiond.Options{Timeout: o.RequestTimeout})
	}
	return s
}

// Ops is the number of requests answered.
func (s *Server) Ops() uint64 { return s.ops.Load() }

// Stats returns the counters of the progress line.
func (s *Server) Stats() Stats {
	if s.o.Stats != nil {
		return s.o.Stats()
	}
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load()}
}

// Serve accepts and serves connections on ln until ln is closed (by
// Shutdown or anyone else; event loops notice the latter within a second)
// or fails. The connections it has accepted are served until Shutdown.
func (s *Server) Serve(ln net.Listener) {
	if s.o.TLS == nil && s.o.Loops >= 0 && store.NeverBlocks(s.o.Store) && s.serveLoops(ln) {
		return
	}
	s.set.Serve(ln, func(nc net.Conn) {
		c := newConn(s, nc)
		if !s.admit(c) {
			nc.Close()
			return
		}
		if s.o.TLS != nil {
			c.cs.set(statePartial, time.Now())
			tc, err := s.o.TLS.Handshake(nc, s.o.FrameTimeout)
			if err != nil {
				s.limits.leave(&c.cs)
				if r := (*tlsconf.RefusedError)(nil); !errors.As(err, &r) {
					s.log.Printf("Warning, refused connection from %s: %v", peer(nc), err)
				} else if !r.Quiet {
					s.log.Printf("Warning, refused connection from %s: %s", peer(nc), r.Cause)
				}
				return
			}
			c.nc = tc
		}
		c.serve()
	})
}

// HandOver makes the coming Shutdown a handover to a process that shares
// the listening socket: accepting stops first, then every connection is
// passed to send at once, between two requests or in the middle of one,
// with what this process has not finished for it: no request is answered
// twice or lost, and its client sees one connection throughout. A TLS
// connection's state cannot leave the process: with TLS (or a nil send)
// the connections are served for grace and closed at their next read.
func (s *Server) HandOver(send HandOff, grace time.Duration) {
	s.stopMap()
	if send == nil || s.o.TLS != nil {
		s.set.SetGrace(grace)
		return
	}
	s.send = send
	s.set.SetHandOff(true)
}

// Adopt serves a connection the process this one replaces handed over
// (HandOver there): its unwritten answers out are written first, and the
// request bytes in are read before the connection's own.
func (s *Server) Adopt(nc net.Conn, out, in []byte) {
	s.set.Adopt(nc, func(nc net.Conn) {
		c := newConn(s, nc)
		if !s.admit(c) {
			nc.Close()
			return
		}
		c.out = append(c.out[:0], out...)
		c.pre = in
		c.serve()
	})
}

// admit registers a new connection under MaxConns, closing a stalled or
// idle one to make room if need be; false (logged) when it is refused.
func (s *Server) admit(c *conn) bool {
	c.cs.raw = c.sock()
	now := c.clock()
	c.cs.set(stateNew, now)
	v, ok := s.limits.admit(&c.cs, s.o.MaxConns, now, s.o.FrameTimeout)
	if !ok {
		s.m.ConnRefused(metrics.RefuseLimit)
		s.log.Printf("Warning, rejected connection from %s: already at -maxconns %d, all in use", c.peer(), s.o.MaxConns)
		return false
	}
	if v != nil {
		s.log.Printf("Warning, closed connection from %s (%s) to admit one from %s: at -maxconns %d",
			v.peer, stateName(v.state), c.peer(), s.o.MaxConns)
	}
	return true
}

// enforceBudget closes the connection waiting longest for its client to
// take its answers while connections hold more than the budget.
func (s *Server) enforceBudget() {
	if v := s.limits.reapStalled(time.Now()); v != nil {
		s.log.Printf("Warning, closing connection from %s: its answers are not taken and connections hold over %d bytes", v.peer, s.connBudget)
	}
}

// Subscribers is the number of connections subscribed to removal
// notices (Options.Notify).
func (s *Server) Subscribers() int {
	if s.hub == nil {
		return 0
	}
	return s.hub.count()
}

// Closing reports whether Shutdown has begun.
func (s *Server) Closing() bool { return s.set.Closing() }

// Shutdown stops accepting on ln, interrupts every connection's next read
// and waits, bounded by the frame timeout, for the requests already
// received to be answered. It stops sessiond too.
func (s *Server) Shutdown(ln net.Listener) {
	s.stopMap()
	if s.hub != nil {
		s.hub.close()
	}
	s.set.Shutdown(ln, s.o.FrameTimeout+time.Second)
	if s.sd != nil {
		s.sd.Close()
	}
}

// Run is dc_server: it serves ln (and sessiond) until ctx is done or the
// listener fails, printing the progress line, then shuts down and prints
// the totals. It returns an error (already logged) only when the listener
// failed.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	sdDone := make(chan struct{})
	if s.sd != nil {
		go func() {
			defer close(sdDone)
			if err := s.sd.Serve(s.o.Sessiond); err != nil {
				fmt.Fprintf(s.o.Info, "Error, sessiond on '%s' stopped: %v\n", s.o.Sessiond.LocalAddr(), err)
			}
		}()
	} else {
		close(sdDone)
	}
	acceptDone := make(chan struct{})
	go func() {
		s.Serve(ln)
		close(acceptDone)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lg := newProgress(s.o.Progress)
	var err error
loop:
	for {
		select {
		case <-tick.C:
			lg.maybeLog(s.o.Info, s.ops.Load(), s.Stats())
		case <-ctx.Done():
			break loop
		case <-acceptDone:
			if !s.set.Closing() {
				err = errors.New("the listener failed")
				fmt.Fprintln(s.o.Info, "Error, the listener failed; shutting down")
			}
			break loop
		}
	}
	s.Shutdown(ln)
	// The datagram being answered, if any, is done once Serve returns:
	// after Run, nothing changes the store (a re-exec's last state is
	// taken then).
	<-sdDone
	st := s.Stats()
	fmt.Fprintf(s.o.Info, "Info, shutting down: total operations = %d, total sessions = %d, hits = %d, misses = %d\n",
		s.ops.Load(), st.Sessions, st.Hits, st.Misses)
	return err
}

// handle answers one request; the context is bounded when RequestTimeout
// is set.
func (s *Server) handle(m *proto.Message, out []byte) ([]byte, error) {
	ctx := context.Background()
	if s.o.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.RequestTimeout)
		defer cancel()
	}
	resp, err := s.h.Handle(ctx, m, out)
	if s.o.Stats == nil && err == nil && m.Op == proto.OpGet {
		// This Server's own hit and miss counters.
		if len(resp) == 1 && resp[0] == proto.ResultNotOK {
			s.misses.Add(1)
		} else {
			s.hits.Add(1)
		}
	}
	return resp, err
}

func peer(c interface{ RemoteAddr() net.Addr }) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "local client"
}
