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
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/latency"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
	"github.com/distcache-go/distcache/goimpl/store"
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
	tried   chan struct{}     // closed once the first connection attempt is over
	m       *metrics.Upstream // nil without metrics
	// waiting counts the requests waiting for a slot.
	waiting atomic.Int64
	// The subscription to the server's removal notices (subscribe.go),
	// under smu; subKick tells subscribeLoop of a new connection.
	smu     sync.Mutex
	sub     subscription
	subKick chan struct{}

	mu          sync.Mutex
	nc          net.Conn    // nil while disconnected
	io          *rawio.Conn // reads and writes nc
	w           *writer     // nc's writer
	rd          *proto.Reader
	wake        chan struct{} // cap 1: readLoop has been given the reader's role
	dead        chan struct{} // closed when the connection is dropped
	gen         uint64
	nextUID     uint32
	connectedAt time.Time
	pending     map[uint32]pend
	// onProbation: the last connection ended while on probation, so the
	// next one is probed before requests go to it.
	onProbation bool
	lastErr     string // for logging changes only (E-46)

	// The reader's role (see readAnswers): at most one goroutine reads the
	// connection. reading says someone has the role; readerCall is the
	// caller that has it, nil when it is readLoop. intr says the
	// watchdog set a past read deadline to stop a reading caller whose
	// request it failed.
	reading    bool
	readerCall *call
	intr       bool
	// quiet is the connection's registration in the runtime's poller
	// when rawio.Quiet could change it (nil otherwise).
	quiet *quietReg
	// toPoll says Poll set a past read deadline to stop readLoop's read
	// of the idle connection, so that the poller's loop can have it.
	toPoll bool
	// polled: the connection is read by an event loop (Upstream.Poll),
	// which holds the reader's role for as long as it reads it.
	polled bool
	// lastUse is when the last request was sent: after idleAfter without
	// one, readLoop reads the idle connection, so that a server that
	// closes it is noticed at once.
	lastUse time.Time

	// The watchdog (watch) times the requests out: one timer for the
	// link, instead of one per request, armed for the soonest deadline.
	dog      *time.Timer
	dogArmed bool
	dogAt    time.Time
}

// pend is a request in flight. c is nil once its caller has given up: the
// answer is then read and dropped.
type pend struct {
	c    *call
	op   proto.Op
	slot bool      // holds one of the Inflight slots
	sent time.Time // for the latency the timeout adapts to
	// The request's timeout (zero due: none): due is when it runs out;
	// seen the answers read when it was last set, ext how often it was
	// extended (see watch).
	due  time.Time
	t    time.Duration
	seen uint64
	ext  int
}

// call carries one request of one caller; calls are pooled.
type call struct {
	// sc is the store.Call of a request started (Upstream.Start): its
	// answer goes to sc.Done instead of done, and op says how to read it.
	sc    *store.Call
	op    proto.Op
	done  chan struct{} // buffered, 1: res/err are set
	dst   []byte        // the answer is appended here
	res   []byte
	err   error
	timer *time.Timer
	pbuf  []byte // an ADD's payload
	rbuf  []byte // a one-byte answer
}

func (c *call) finish(res []byte, err error) {
	if sc := c.sc; sc != nil {
		c.sc = nil
		switch c.op {
		case proto.OpGet:
			sc.Res, sc.Err = getResult(res, c.dst, err)
		case proto.OpGetLife:
			sc.Res, sc.Left, sc.Err = lifeResult(c.op, res, c.dst, err)
		default:
			sc.Res, sc.Err = nil, status(c.op, res, err)
			c.rbuf = res[:0]
		}
		c.dst = nil
		callPool.Put(c)
		sc.Done.Complete(sc)
		return
	}
	c.res, c.err = res, err
	c.done <- struct{}{}
}

// run keeps the connection: it connects at once, and again every retry
// interval while disconnected.
func (l *link) run() {
	for first := true; ; first = false {
		if l.state.Load() == stateDown {
			l.connect()
		}
		if first {
			close(l.tried)
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
	l.quiet = nil
	if l.io.Raw() {
		// A unix socket's writing edges (the server reading our
		// requests) would each wake a thread for nothing: the poller
		// watches the connection for reading until a write must wait
		// (and for nothing while an event loop reads it: Mute).
		if reg, ok := rawio.Quiet(nc); ok {
			q := &quietReg{reg: reg}
			l.quiet = q
			l.io.WriteWait = q.loud
		}
	}
	l.rd = proto.NewReader(l.io, proto.WantResponses)
	l.wake, l.dead = make(chan struct{}, 1), make(chan struct{})
	l.connectedAt = time.Now()
	l.lastUse = l.connectedAt
	l.gen++
	l.w = &writer{l: l, nc: nc, io: l.io, gen: l.gen}
	l.armDog(l.connectedAt.Add(idleAfter))
	attach := l.becomePolled()
	rd, wake, dead := l.rd, l.wake, l.dead
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
	select {
	case l.subKick <- struct{}{}:
	default:
	}
	go l.readLoop(rd, gen, wake, dead)
	attach.do()
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

// readLoop reads connection gen whenever it is given the reader's role:
// when a reading caller got its answer while others wait for theirs, when
// a request is sent by a caller that does not read, and when the
// connection has been idle for idleAfter.
func (l *link) readLoop(rd *proto.Reader, gen uint64, wake, dead <-chan struct{}) {
	for {
		select {
		case <-wake:
		case <-dead:
			return
		}
		l.readAnswers(rd, gen, nil)
	}
}

// idleAfter is how long a connection goes without a request before
// readLoop reads it, so that its end is noticed without a request.
const idleAfter = 100 * time.Millisecond

// readAnswers reads and delivers the answers of connection gen while it
// has the reader's role. A caller (c) that sent a request while no one
// was reading reads for itself and everyone else: the answer it waits for
// then needs no hand-over between goroutines, and the proxy's goroutine
// for a local client waits only on sockets. It gives the role up once its
// own answer is in (to readLoop when other requests wait for answers), or
// when the watchdog fails its request. readLoop (c nil) gives it up when
// no request waits for an answer.
func (l *link) readAnswers(rd *proto.Reader, gen uint64, c *call) {
	for {
		if c != nil && len(c.done) > 0 {
			var a pollAttach
			l.mu.Lock()
			if l.gen == gen && l.nc != nil {
				a = l.release()
			}
			l.mu.Unlock()
			a.do()
			return
		}
		m, err := rd.ReadMessage()
		if err != nil {
			l.mu.Lock()
			if c != nil && l.gen == gen && l.nc != nil && l.intr && l.readerCall == c {
				a := l.release() // the watchdog stopped this read: c has failed
				l.mu.Unlock()
				a.do()
				return
			}
			if c == nil && l.gen == gen && l.nc != nil && l.toPoll {
				// Poll stopped readLoop's read: the loop reads now.
				l.reading = false
				a := l.becomePolled()
				l.mu.Unlock()
				a.do()
				return
			}
			l.mu.Unlock()
			l.readFailed(gen, err)
			return
		}
		if more, ok := l.deliver(gen, m, c == nil); !ok || !more {
			return
		}
	}
}

// readFailed drops connection gen after its reader's error.
func (l *link) readFailed(gen uint64, err error) {
	if err == io.EOF {
		err = errServerClosed
	}
	l.fail(gen, err, false)
}

// deliver hands answer m of connection gen to its caller; ok is false
// when m was not asked (the connection is dropped). With last, the
// reader's role ends once no request waits for an answer (more false).
func (l *link) deliver(gen uint64, m *proto.Message, last bool) (more, ok bool) {
	l.mu.Lock()
	p, ok := l.pending[m.UID]
	if !ok || p.op != m.Op {
		l.mu.Unlock()
		l.fail(gen, kindError{fmt.Sprintf("the server answered uid %d op %v, which was not asked", m.UID, m.Op), &proto.CorruptError{}}, false)
		return false, false
	}
	delete(l.pending, m.UID)
	// The answer is copied out of the reader's buffer before the
	// role can pass: whoever reads next reuses that buffer (and m).
	var res []byte
	if p.c != nil {
		res = append(p.c.dst, m.Payload...)
	}
	stop := last && len(l.pending) == 0
	var a pollAttach
	if stop {
		l.reading = false
		a = l.becomePolled()
	}
	l.mu.Unlock()
	a.do()
	if l.u.timeout > 0 {
		now := time.Now()
		l.lat.Observe(now.Sub(p.sent), now)
	}
	l.answers.Add(1)
	if p.c != nil {
		p.c.finish(res, nil)
	}
	if p.slot {
		<-l.slots
	}
	return !stop, true
}

// release gives up the reading caller's role (l.mu held): to readLoop
// when requests still wait for answers.
func (l *link) release() pollAttach {
	if l.intr {
		l.intr = false
		l.nc.SetReadDeadline(time.Time{})
	}
	l.readerCall = nil
	l.reading = false
	if a := l.becomePolled(); a.p != nil {
		return a
	}
	if len(l.pending) > 0 {
		l.reading = true
		l.wake <- struct{}{} // cap 1, and only the holder of the role sends
	}
	return pollAttach{}
}

// armDog makes the watchdog fire at at, unless it fires sooner (l.mu
// held).
func (l *link) armDog(at time.Time) {
	if l.dogArmed && !l.dogAt.After(at) {
		return
	}
	l.dogArmed, l.dogAt = true, at
	l.dog.Reset(time.Until(at))
}

// watch is the watchdog: it fails the requests whose time ran out, and
// gives readLoop the reader's role on a connection idle for idleAfter.
//
// The server answers in order: answers read since a request's timeout
// was set were to earlier requests, so the server is slow, not stalled.
// And a watchdog that fires late says this process did not get the CPU:
// the machine is overloaded, and the server's silence proves nothing.
// Such requests get more time, up to latency.MaxExtensions timeouts. A
// request whose time is up fails with ErrDisconnected, and its server is
// put on probation.
func (l *link) watch() {
	now := time.Now()
	l.mu.Lock()
	l.dogArmed = false
	if l.nc == nil {
		l.mu.Unlock()
		return
	}
	gen := l.gen
	var next time.Time
	var stalled time.Duration
	answered := l.answers.Load()
	for uid, p := range l.pending {
		if p.c == nil || p.due.IsZero() {
			continue
		}
		if now.Before(p.due) {
			if next.IsZero() || p.due.Before(next) {
				next = p.due
			}
			continue
		}
		if (answered != p.seen || latency.Late(p.due, now, p.t)) && p.ext < latency.MaxExtensions {
			p.seen, p.ext, p.due = answered, p.ext+1, now.Add(p.t)
		} else {
			if p.c == l.readerCall {
				l.intr = true
				l.nc.SetReadDeadline(time.Unix(1, 0))
			}
			if stalled == 0 && l.probation() {
				// before the caller hears of it: its next request must
				// not go to this server
				stalled = p.t
			}
			p.c.finish(p.c.dst, ErrDisconnected)
			p.c = nil // its answer, if it comes, is read and dropped
		}
		l.pending[uid] = p
		if p.c != nil && (next.IsZero() || p.due.Before(next)) {
			next = p.due
		}
	}
	if !l.reading {
		if idle := l.lastUse.Add(idleAfter); now.Before(idle) {
			if next.IsZero() || idle.Before(next) {
				next = idle
			}
		} else {
			l.reading = true
			l.wake <- struct{}{}
		}
	}
	if !next.IsZero() {
		l.armDog(next)
	}
	l.mu.Unlock()
	if stalled > 0 {
		l.probing(gen, stalled)
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
	close(l.dead)
	l.reading, l.readerCall, l.intr = false, nil, false
	l.polled, l.toPoll = false, false
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
	if l.u.sink != nil {
		// What the near cache holds came over the connection that is
		// gone: it would forget it at its next lookup (a new NearState);
		// a shared map, which no lookup reaches, forgets it now.
		l.u.sink.Flush()
	}
	l.u.log.Printf("Warning, lost the server '%s': %v (%d requests failed)", l.srv.Name, err, n)
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// send registers c under a fresh uid on the current connection and writes
// the request; ok is false when there is no connection in state want.
// With t > 0 the request fails after t (the watchdog). With read, the
// caller takes the reader's role if no one has it (rd is then the
// connection's reader: the caller must call readAnswers); otherwise
// someone is made to read.
func (l *link) send(c *call, op proto.Op, payload []byte, slot bool, want int32, t time.Duration, deadline time.Time, read bool) (uid uint32, gen uint64, rd *proto.Reader, ok bool) {
	// A started request (Start): the caller must not wait. (Read now:
	// once registered, c may complete and be reused at any time.)
	nowait := c.sc != nil
	var batch func(func())
	if nowait {
		batch = c.sc.Batch
	}
	l.mu.Lock()
	if l.nc == nil || l.state.Load() != want {
		l.mu.Unlock()
		return 0, 0, nil, false
	}
	if op == proto.OpGetLife && !l.announced(proto.FeatureGetLife) {
		op = proto.OpGet
	}
	c.op = op // how the answer is read (lifeResult)
	uid = l.nextUID
	for {
		if _, busy := l.pending[uid]; !busy {
			break
		}
		uid++
	}
	l.nextUID = uid + 1
	now := time.Now()
	p := pend{c: c, op: op, slot: slot, sent: now}
	if t > 0 {
		p.due, p.t, p.seen = now.Add(t), t, l.answers.Load()
		l.armDog(p.due)
	} else {
		l.armDog(now.Add(idleAfter))
	}
	l.pending[uid] = p
	l.lastUse = now
	switch {
	case l.reading:
	case read:
		l.reading, l.readerCall, rd = true, c, l.rd
	default:
		l.reading = true
		l.wake <- struct{}{}
	}
	w, gen, others := l.w, l.gen, len(l.pending) > 1
	l.mu.Unlock()

	// The write is done outside l.mu, so that the answer reader is never
	// held up by a writer waiting for a server that is itself waiting for
	// us to read. A failed write fails the connection, and this request
	// with it.
	w.send(&proto.Message{UID: uid, Op: op, Payload: payload}, deadline, others && !nowait, nowait, batch)
	return uid, gen, rd, true
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
	now := time.Now()
	var t time.Duration
	if l.u.timeout > 0 {
		t = l.lat.Timeout(now)
	}
	// A write that cannot finish loses the connection: it gets far more
	// time than an answer does, so a busy moment does not cost that.
	deadline := now.Add(10 * time.Second)
	if t > 0 {
		deadline = now.Add(max(10*t, time.Second))
	}
	select {
	case l.slots <- struct{}{}:
	default:
		if err := l.waitSlot(ctx, c, t); err != nil {
			return dst, err
		}
	}
	c.dst = dst
	// A caller whose ctx can end does not read: it must be free to go.
	done := ctx.Done()
	uid, gen, rd, ok := l.send(c, op, payload, true, stateUp, t, deadline, done == nil)
	if !ok {
		<-l.slots
		return dst, ErrNoServer
	}
	if rd != nil {
		l.readAnswers(rd, gen, c)
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-done:
		if l.abandon(c, uid) {
			return dst, fmt.Errorf("upstream: %w: %w", ctx.Err(), ErrDisconnected)
		}
	}
	<-c.done
	return c.res, c.err
}

// waitSlot waits for one of the Inflight slots, within t and ctx.
func (l *link) waitSlot(ctx context.Context, c *call, t time.Duration) error {
	var expired <-chan time.Time
	if t > 0 {
		c.timer.Reset(t)
		defer c.timer.Stop()
		expired = c.timer.C
	}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-expired:
		return ErrNoServer
	case <-ctx.Done():
		return fmt.Errorf("upstream: %w: %w", ctx.Err(), ErrNoServer)
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

// probation takes a server that let a request time out out of use (l.mu
// held); it reports whether it did, and then the caller must call
// probing after releasing l.mu.
func (l *link) probation() bool {
	if l.nc == nil || l.state.Load() != stateUp {
		return false
	}
	l.state.Store(stateProbing)
	return true
}

// probing reports that connection gen went on probation after a request
// went unanswered for t, and probes it in the background.
func (l *link) probing(gen uint64, t time.Duration) {
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
	if _, _, _, ok := l.send(c, proto.OpHave, probeID, false, stateProbing, 0, time.Now().Add(l.u.deadAfter), false); !ok {
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

// A link's connection read by an event loop (Upstream.Poll): the loop
// holds the reader's role while it watches the socket, and reads what
// comes without waiting (rawio.Conn.NoWait), so that an answer is read
// and delivered by the loop's own thread, which writes it back to the
// local client: no goroutine is woken for it, and the idle connection
// needs no readLoop to notice that the server closed it.

// pollAttach is an attachment to make once l.mu is released (p nil:
// none).
type pollAttach struct {
	p  evloop.Poller
	rc syscall.RawConn
	h  *polledConn
}

func (a pollAttach) do() {
	if a.p != nil && !a.p.Attach(a.h.l, a.rc, a.h) {
		a.h.Unpolled()
	}
}

// polledConn is one connection's Handler in the poller's loop.
type polledConn struct {
	l   *link
	gen uint64
}

func (h *polledConn) Ready()    { h.l.readPolled(h.gen) }
func (h *polledConn) Unpolled() { h.l.unpolled(h.gen) }

// becomePolled gives the reader's role to the poller, when there is one,
// no one has the role and the connection is a plain socket (l.mu held);
// the caller makes the returned attachment after releasing l.mu.
func (l *link) becomePolled() pollAttach {
	p := l.u.poller()
	if p == nil || l.nc == nil || l.reading || l.polled || !l.io.Raw() {
		return pollAttach{}
	}
	sc, ok := l.nc.(syscall.Conn)
	if !ok {
		return pollAttach{}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return pollAttach{}
	}
	if l.toPoll {
		l.toPoll = false
		l.nc.SetReadDeadline(time.Time{})
	}
	l.reading, l.polled = true, true
	l.io.NoWait = true
	l.quiet.set(true)
	return pollAttach{p, rc, &polledConn{l, l.gen}}
}

// pollNow has the poller read the connection: at once when no one is
// reading it, by stopping readLoop's read when it watches the idle
// connection, or when the reading caller is answered.
func (l *link) pollNow() {
	l.mu.Lock()
	// Only a plain socket can be polled: readLoop's read of any other
	// (TLS) is left alone, or the requests it waits for would have no
	// reader.
	if l.nc != nil && l.io.Raw() && l.reading && !l.polled && l.readerCall == nil && !l.toPoll {
		l.toPoll = true
		l.nc.SetReadDeadline(time.Unix(1, 0))
	}
	a := l.becomePolled()
	l.mu.Unlock()
	a.do()
}

// readPolled reads the answers that are in on connection gen, from the
// poller's loop, and delivers them.
func (l *link) readPolled(gen uint64) {
	l.mu.Lock()
	ok := l.gen == gen && l.polled
	rd, io := l.rd, l.io
	l.mu.Unlock()
	if !ok {
		return
	}
	io.Readable()
	for {
		m, err := rd.ReadMessage()
		if err == rawio.ErrWouldBlock {
			return
		}
		if err != nil {
			l.readFailed(gen, err)
			return
		}
		if _, ok := l.deliver(gen, m, false); !ok {
			return
		}
	}
}

// unpolled takes the reader's role back from a poller that no longer
// reads connection gen: readLoop reads it from now on.
func (l *link) unpolled(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || !l.polled || l.nc == nil {
		return
	}
	l.polled, l.reading = false, false
	l.io.NoWait = false
	l.quiet.set(false)
	if len(l.pending) > 0 {
		l.reading = true
		l.wake <- struct{}{}
	}
}

// quietReg is a connection's quiet registration in the runtime's poller
// (rawio.Quiet), muted while an event loop reads the connection, and
// loud for good once a write has had to wait for room.
type quietReg struct {
	mu     sync.Mutex
	reg    rawio.Registration
	muted  bool
	louder bool
}

// loud is the connection's rawio.Conn.WriteWait.
func (q *quietReg) loud() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.louder {
		q.louder = true
		q.reg.Loud()
	}
}

// set mutes the registration (on) or makes it quiet again.
func (q *quietReg) set(on bool) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.louder || q.muted == on {
		return
	}
	q.muted = on
	if on {
		q.reg.Mute()
	} else {
		q.reg.Quiet()
	}
}
