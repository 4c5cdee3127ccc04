// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/latency"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
)

// The states of a server link.
const (
	stateDown    int32 = iota // no connection
	stateUp                   // connected and answering: requests go here
	stateProbing              // connected, but a request timed out (or the
	// last connection ended on probation): only the probe is sent
)

// probeID is the session id the probe asks HAVE of. Any answer will do.
var probeID = []byte("dc_client probe")

// link is the one connection to one server. Requests get fresh uids
// (uint32, wrapping, E-8); answers are matched by uid and checked against
// the request's operation; anything else is a corrupt server stream (E-6):
// the connection is dropped and the requests in flight fail.
type link struct {
	u     *Upstream
	srv   Server
	feat  features // what the server announced (take.go)
	state atomic.Int32
	// answers counts the answers read, so that a timed-out request can
	// tell a slow server from a stalled one.
	answers atomic.Uint64
	lat     latency.Bound // the request timeout, adapting to the answers
	slots   chan struct{}
	kick    chan struct{}
	m       *metrics.Upstream // nil without metrics
	// waiting counts the requests waiting for a slot.
	waiting atomic.Int64

	mu          sync.Mutex
	nc          net.Conn    // nil while disconnected
	io          *rawio.Conn // reads and writes nc
	w           *writer     // nc's writer
	gen         uint64
	nextUID     uint32
	connectedAt time.Time
	pending     map[uint32]pend
	// onProbation: the last connection ended while on probation, so the
	// next one is probed before requests go to it.
	onProbation bool
	lastErr     string // for logging changes only (E-46)
}

// pend is a request in flight. c is nil once its caller has given up: the
// answer is then read and dropped.
type pend struct {
	c    *call
	op   proto.Op
	slot bool      // holds one of the Inflight slots
	sent time.Time // for the latency the timeout adapts to
}

// call carries one request of one caller; calls are pooled.
type call struct {
	done  chan struct{} // buffered, 1: res/err are set
	dst   []byte        // the answer is appended here
	res   []byte
	err   error
	timer *time.Timer
	pbuf  []byte // an ADD's payload
	rbuf  []byte // a one-byte answer
}

func (c *call) finish(res []byte, err error) {
	c.res, c.err = res, err
	c.done <- struct{}{}
}

// run keeps the connection: it connects at once, and again every retry
// interval while disconnected.
func (l *link) run() {
	for {
		if l.state.Load() == stateDown {
			l.connect()
		}
		select {
		case <-l.u.stop:
			return
		case <-time.After(l.u.retry):
		case <-l.kick:
			// Lost the connection. One that had been up for a while (a
			// server closing idle connections, a restart) is re-made at
			// once; one that just failed waits a retry interval.
			l.mu.Lock()
			upFor := time.Since(l.connectedAt)
			l.mu.Unlock()
			if upFor < min(l.u.retry, time.Second) {
				select {
				case <-l.u.stop:
					return
				case <-time.After(l.u.retry):
				}
			}
		}
	}
}

func (l *link) connect() {
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Second, min(l.u.retry, 5*time.Second)))
	nc, err := l.srv.Dial(ctx)
	cancel()
	l.mu.Lock()
	if err != nil {
		l.m.Error(err)
		msg := err.Error()
		report := msg != l.lastErr
		l.lastErr = msg
		l.mu.Unlock()
		if report {
			l.u.log.Printf("Warning, can't connect to the server '%s': %v (retrying every %v)", l.srv.Name, err, l.u.retry)
		}
		return
	}
	select {
	case <-l.u.stop:
		l.mu.Unlock()
		nc.Close()
		return
	default:
	}
	l.lastErr = ""
	l.nc = nc
	l.io = new(rawio.Conn)
	l.io.Reset(nc)
	l.connectedAt = time.Now()
	l.gen++
	l.w = &writer{l: l, nc: nc, io: l.io, gen: l.gen}
	gen, probe := l.gen, l.onProbation
	if probe {
		l.state.Store(stateProbing)
	} else {
		l.state.Store(stateUp)
	}
	l.mu.Unlock()
	if gen > 1 {
		l.m.Reconnect()
	}
	l.m.Up(!probe)
	go l.readLoop(l.io, gen)
	if probe {
		l.u.log.Printf("Info, connected to the server '%s'; probing it before use", l.srv.Name)
		go l.probe(gen)
	} else {
		l.u.log.Printf("Info, connected to the server '%s'", l.srv.Name)
	}
}

// errServerClosed ends a connection the server closed.
var errServerClosed = kindError{"the server closed the connection", io.EOF}

// kindError is a failure in our words that unwraps to the cause
// metrics.Kind classifies it by.
type kindError struct {
	msg   string
	cause error
}

func (e kindError) Error() string { return e.msg }
func (e kindError) Unwrap() error { return e.cause }

// readLoop delivers the answers of one connection.
func (l *link) readLoop(rw *rawio.Conn, gen uint64) {
	rd := proto.NewReader(rw, proto.WantResponses)
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			if err == io.EOF {
				err = errServerClosed
			}
			l.fail(gen, err, false)
			return
		}
		l.mu.Lock()
		p, ok := l.pending[m.UID]
		if !ok || p.op != m.Op {
			l.mu.Unlock()
			l.fail(gen, kindError{fmt.Sprintf("the server answered uid %d op %v, which was not asked", m.UID, m.Op), &proto.CorruptError{}}, false)
			return
		}
		delete(l.pending, m.UID)
		l.mu.Unlock()
		if l.u.timeout > 0 {
			now := time.Now()
			l.lat.Observe(now.Sub(p.sent), now)
		}
		l.answers.Add(1)
		if p.c != nil {
			p.c.finish(append(p.c.dst, m.Payload...), nil)
		}
		if p.slot {
			<-l.slots
		}
	}
}

// fail drops connection generation gen: its requests in flight fail with
// ErrDisconnected. probation says the server is known not to answer, so
// its next connection is probed before use.
func (l *link) fail(gen uint64, err error, probation bool) {
	l.mu.Lock()
	if l.gen != gen || l.nc == nil {
		l.mu.Unlock()
		return
	}
	l.nc.Close()
	l.nc = nil
	l.onProbation = probation || l.state.Load() == stateProbing
	l.state.Store(stateDown)
	l.m.Up(false)
	select {
	case <-l.u.stop: // closing: not a failure
	default:
		l.m.Error(err)
	}
	n := 0
	for uid, p := range l.pending {
		delete(l.pending, uid)
		if p.c != nil {
			p.c.finish(p.c.dst, ErrDisconnected)
		}
		if p.slot {
			<-l.slots
			n++
		}
	}
	l.mu.Unlock()
	l.u.log.Printf("Warning, lost the server '%s': %v (%d requests failed)", l.srv.Name, err, n)
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// send registers c under a fresh uid on the current connection and writes
// the request; ok is false when there is no connection in state want.
func (l *link) send(c *call, op proto.Op, payload []byte, slot bool, want int32, deadline time.Time) (uid uint32, gen uint64, ok bool) {
	l.mu.Lock()
	if l.nc == nil || l.state.Load() != want {
		l.mu.Unlock()
		return 0, 0, false
	}
	uid = l.nextUID
	for {
		if _, busy := l.pending[uid]; !busy {
			break
		}
		uid++
	}
	l.nextUID = uid + 1
	l.pending[uid] = pend{c: c, op: op, slot: slot, sent: time.Now()}
	w, gen := l.w, l.gen
	l.mu.Unlock()

	// The write is done outside l.mu, so that the answer reader is never
	// held up by a writer waiting for a server that is itself waiting for
	// us to read. A failed write fails the connection, and this request
	// with it.
	w.send(&proto.Message{UID: uid, Op: op, Payload: payload}, deadline)
	return uid, gen, true
}

// abandon gives up waiting for the answer to uid: it returns false when
// the answer is already being delivered (the caller then waits for it).
func (l *link) abandon(c *call, uid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[uid]
	if !ok || p.c != c {
		return false
	}
	p.c = nil
	l.pending[uid] = p
	return true
}

// roundTrip sends one request and waits for its answer, appended to dst,
// within the Upstream's Timeout and ctx.
func (l *link) roundTrip(ctx context.Context, c *call, op proto.Op, payload, dst []byte) ([]byte, error) {
	var expired <-chan time.Time
	now := time.Now()
	var t time.Duration
	if l.u.timeout > 0 {
		t = l.lat.Timeout(now)
	}
	// A write that cannot finish loses the connection: it gets far more
	// time than an answer does, so a busy moment does not cost that.
	deadline := now.Add(10 * time.Second)
	if t > 0 {
		c.timer.Reset(t)
		defer c.timer.Stop()
		expired = c.timer.C
		deadline = now.Add(max(10*t, time.Second))
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.waiting.Add(1)
		select {
		case l.slots <- struct{}{}:
			l.waiting.Add(-1)
		case <-expired:
			l.waiting.Add(-1)
			return dst, ErrNoServer
		case <-ctx.Done():
			l.waiting.Add(-1)
			return dst, fmt.Errorf("upstream: %w: %w", ctx.Err(), ErrNoServer)
		}
	}
	c.dst = dst
	uid, gen, ok := l.send(c, op, payload, true, stateUp, deadline)
	if !ok {
		<-l.slots
		return dst, ErrNoServer
	}
	seen, extensions, due := l.answers.Load(), 0, now.Add(t)
	for {
		select {
		case <-c.done:
			return c.res, c.err
		case <-expired:
			// The server answers in order: answers that came meanwhile
			// were to earlier requests, so it is slow, not stalled. And a
			// timer that fires late says this process did not get the
			// CPU: the machine is overloaded, and the server's silence
			// proves nothing. Such requests get more time, up to
			// latency.MaxExtensions timeouts.
			answered := l.answers.Load()
			if (answered != seen || latency.Late(due, time.Now(), t)) && extensions < latency.MaxExtensions {
				seen = answered
				extensions++
				due = time.Now().Add(t)
				c.timer.Reset(t)
				continue
			}
			if l.abandon(c, uid) {
				l.probation(gen, t)
				return dst, ErrDisconnected
			}
		case <-ctx.Done():
			if l.abandon(c, uid) {
				return dst, fmt.Errorf("upstream: %w: %w", ctx.Err(), ErrDisconnected)
			}
		}
		<-c.done
		return c.res, c.err
	}
}

// The request timeout adapts to the latency the server shows
// (goimpl/latency): Factor times the slowest answer of the last two
// windows, at least Options.Timeout and at most maxTimeoutFactor times it
// (a server answering within 10 ms keeps Timeout). A stalled server
// therefore costs Timeout when it was quick before, and a machine so
// loaded that answers take hundreds of milliseconds does not take its
// server for stalled.
const maxTimeoutFactor = 20

// probation takes a server that let a request time out out of use, and
// probes it in the background.
func (l *link) probation(gen uint64, t time.Duration) {
	l.mu.Lock()
	if l.gen != gen || l.nc == nil || l.state.Load() != stateUp {
		l.mu.Unlock()
		return
	}
	l.state.Store(stateProbing)
	l.mu.Unlock()
	l.m.Up(false)
	l.m.ErrorKind(metrics.KindTimeout)
	l.u.log.Printf("Warning, the server '%s' did not answer within %v; not using it until it answers a probe", l.srv.Name, t.Round(time.Millisecond))
	go l.probe(gen)
}

// probe asks the server on probation one HAVE and puts it back in use when
// the answer comes; a server that does not answer within DeadAfter loses
// its connection (the next one is probed in turn).
func (l *link) probe(gen uint64) {
	start := time.Now()
	c := callPool.Get().(*call)
	c.dst = c.rbuf[:0]
	if _, _, ok := l.send(c, proto.OpHave, probeID, false, stateProbing, time.Now().Add(l.u.deadAfter)); !ok {
		callPool.Put(c)
		return
	}
	c.timer.Reset(l.u.deadAfter)
	select {
	case <-c.done:
		c.timer.Stop()
		if c.err != nil {
			return // the connection failed; a new one is probed
		}
		l.mu.Lock()
		back := l.gen == gen && l.state.Load() == stateProbing
		if back {
			l.state.Store(stateUp)
			l.onProbation = false
		}
		l.mu.Unlock()
		if back {
			l.m.Up(true)
			l.u.log.Printf("Info, the server '%s' answers again (the probe took %v)", l.srv.Name, time.Since(start).Round(time.Millisecond))
		}
		callPool.Put(c)
	case <-c.timer.C:
		// The call stays registered until fail drops it: not pooled.
		l.fail(gen, kindError{fmt.Sprintf("no answer to a probe within %v", l.u.deadAfter), os.ErrDeadlineExceeded}, true)
	}
}
