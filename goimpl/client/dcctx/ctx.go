// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/latency"
	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// DC_CTX flag bits (same values as <distcache/dc_client.h>).
const (
	FlagPersistent = 0x1
	FlagPIDCheck   = 0x2
	FlagRetry      = 0x4
	FlagLate       = 0x8
)

// MaxIdle is how many idle connections a Ctx keeps. Concurrent
// operations beyond that open extra connections, closed after use. (The
// C library's front keeps the same number: capi/gen writes it to C.)
const MaxIdle = 32

// MinGetResponse: GET answers shorter than this are failures (a miss is the
// single byte 0x01; sessions of 1..4 bytes are unreadable, EDGES E-15).
const MinGetResponse = 5

// Ctx has the semantics of DC_CTX (DC_CTX_new(3) with the doc/EDGES.md
// fixes) and is safe for concurrent use by many goroutines.
//
// Connections. The Ctx keeps a pool of up to 32 idle connections: an
// operation takes one (or dials when none is idle), and returns it after a
// clean exchange, so concurrent operations never share a connection
// mid-exchange. With flags 0 (a connection per operation in the original,
// Apache's mod_socache_dc) the pool only saves the connect and accept: a
// kept connection is checked without blocking before it is reused (one
// recv(MSG_PEEK|MSG_DONTWAIT); the peer's close or unexpected bytes discard
// it), and when it dies before any byte of its answer arrived the request
// is sent again once on a new connection, so the caller sees what a fresh
// connection would have given. Idle connections are never used by another
// process: a pid change drops them, and the C library's fork handler
// closes the child's copies (IdleFDs). Options.ConnPerOp restores a
// connection per operation. A connection whose exchange failed is closed.
// Unlike the original, a persistent Ctx is never stuck: a rejected response
// drops its connection (E-9), a failed reconnect leaves nothing behind (E-10),
// and the next operation dials again even without FlagRetry (E-35). After a
// network failure every idle connection is dropped too: they lead to the
// same, probably restarted, server.
//
// Flags. FlagPIDCheck: when os.Getpid() differs from the recorded pid, the
// idle connections are closed (only this process's descriptors) and the pid
// is updated, so a forked child reconnects once, not on every operation
// (E-33). FlagRetry: when the connection dies during an exchange (write or
// read error, EOF, corrupt stream), dial once more and resend the same
// request with the same uid; a well-formed answer, a rejected one or a
// timeout is not retried. FlagLate: New does not connect. Without FlagLate,
// New dials once and fails if that fails. Without FlagPersistent the other
// three flags have no effect; unknown bits are ignored.
//
// Request uids come from a per-Ctx uint32 counter starting at 1 (wrapping
// modulo 2^32, compared as uint32, E-8).
//
// Reget. The Ctx remembers the response of the last successful GET (ids up
// to 64 bytes, E-18). Any other operation, and any failed operation, clears
// it (E-14). With concurrent callers this is the most recent operation of
// any goroutine on the Ctx: RegetSession(id) succeeds only if the last
// operation to complete on the Ctx was a successful GET of id; otherwise it
// fails and the caller falls back to GetSession.
type Ctx struct {
	tr    transport
	addr  string // the target string, for errors
	flags uint32
	opt   Options

	uid    atomic.Uint32
	pid    atomic.Int64
	closed atomic.Bool
	busy   atomic.Int32 // operations in flight (roundTrip)

	mu    sync.Mutex
	idle  []link // persistent mode: connected links
	spare []link // reset links, dialled again instead of allocating new ones

	regetSet  atomic.Bool
	regetMu   sync.Mutex
	regetID   []byte
	regetData []byte

	lat     latency.Bound // the adaptive bound of an exchange
	stalled atomic.Bool   // on probation (probation.go)
	done    chan struct{} // closed by Close
	probeMu sync.Mutex
	probeFD int           // the probe's socket, or -1
	lastLog atomic.Int64  // when probation was last logged (unix ns)
	drops   atomic.Uint32 // idle connections dropped, probations begun (Drops)
}

// New creates a context for target (DC_CTX_new) over opt's Transport
// (TransportCaller by default). It fails if target is not a connectable
// address (goimpl/nal's ParseTarget: host names are resolved here, once),
// or if FlagPersistent is set without FlagLate and the first connection
// cannot be made.
func New(target string, flags uint32, opt *Options) (*Ctx, error) {
	return NewContext(context.Background(), target, flags, opt)
}

// NewContext is New with ctx bounding the name lookup and the first
// connection.
func NewContext(ctx context.Context, target string, flags uint32, opt *Options) (*Ctx, error) {
	o := opt.resolved()
	tgt, err := nal.ParseTarget(ctx, target)
	if err != nil {
		return nil, &OpError{Op: "parse", Addr: target, Err: err}
	}
	tr, err := newTransport(o.Transport, tgt, o)
	if err != nil {
		return nil, &OpError{Op: "parse", Addr: target, Err: err}
	}
	c := &Ctx{tr: tr, addr: target, flags: flags, opt: o, done: make(chan struct{}), probeFD: -1}
	c.lat.Init(o.Timeout, MaxTimeoutFactor*o.Timeout)
	if nt, ok := tr.(*netTransport); ok && nt.dialer.Timeout <= 0 {
		nt.timeout = c.connectBound
	}
	c.pid.Store(int64(os.Getpid()))
	if c.persistent() && flags&FlagLate == 0 {
		l, err := c.dial(ctx)
		if err != nil {
			return nil, err
		}
		if nl, ok := l.(*nalLink); ok {
			if err := nl.connected(time.Now().Add(c.connectBound())); err != nil {
				l.destroy()
				return nil, &OpError{Op: "dial", Addr: target, Err: err}
			}
			nl.fresh = false
		}
		c.idle = append(c.idle, l)
	}
	return c, nil
}

// Options returns the context's options with defaults filled in.
func (c *Ctx) Options() Options { return c.opt }

func (c *Ctx) persistent() bool { return c.flags&FlagPersistent != 0 }

// Close closes the idle connections (DC_CTX_free). Operations in flight
// finish; later ones fail with ErrClosed. Safe to call twice and on nil.
func (c *Ctx) Close() {
	if c == nil || c.closed.Swap(true) {
		return
	}
	close(c.done)
	c.stopProbe()
	c.drop(&c.idle)
	c.drop(&c.spare)
}

// dropIdle closes the pooled connections (and tells a holder of handed
// over ones to close them too: Drops).
func (c *Ctx) dropIdle() {
	c.drops.Add(1)
	c.drop(&c.idle)
}

// drop empties one of the lists under mu and destroys its links outside.
func (c *Ctx) drop(list *[]link) {
	c.mu.Lock()
	ls := *list
	*list = nil
	c.mu.Unlock()
	for _, l := range ls {
		l.destroy()
	}
}

// IdleFDs returns the descriptors of the pooled idle connections and of
// the probe's connection (a forked child closes its copies at once, so
// that it does not hold the parent's connections open).
func (c *Ctx) IdleFDs() []int {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var fds []int
	for _, l := range c.idle {
		if fd := l.fd(); fd >= 0 {
			fds = append(fds, fd)
		}
	}
	return c.probeFDs(fds)
}

func (c *Ctx) dial(ctx context.Context) (link, error) {
	var reuse link
	c.mu.Lock()
	if n := len(c.spare); n > 0 {
		reuse = c.spare[n-1]
		c.spare[n-1] = nil
		c.spare = c.spare[:n-1]
	}
	c.mu.Unlock()
	l, err := c.tr.dial(ctx, reuse)
	if err != nil {
		return nil, &OpError{Op: "dial", Addr: c.addr, Err: err}
	}
	return l, nil
}

// acquire returns an idle pooled connection or a new one; reused tells
// which. A non-persistent Ctx checks an idle connection before reusing it
// (link.alive: the peer may have closed it while it sat idle) and drops its
// idle connections in a process whose pid is not the one recorded.
func (c *Ctx) acquire(ctx context.Context) (l link, reused bool, err error) {
	persistent := c.persistent()
	if persistent && c.flags&FlagPIDCheck != 0 || !persistent && c.hasIdle() {
		if pid := int64(os.Getpid()); pid != c.pid.Load() {
			c.pid.Store(pid)
			c.dropIdle()
		}
	}
	for {
		c.mu.Lock()
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		l = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		if persistent || l.alive() {
			return l, true, nil
		}
		l.destroy()
	}
	l, err = c.dial(ctx)
	return l, false, err
}

// hasIdle reports whether a connection sits in the pool.
func (c *Ctx) hasIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle) > 0
}

// release ends an operation's use of l: a clean connection goes back to
// the pool (up to MaxIdle idle ones, persistent or not); otherwise it is
// closed, and after a clean exchange kept (without its socket) for the
// next dial.
func (c *Ctx) release(l link, clean bool) {
	if !clean {
		l.destroy()
		return
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		l.destroy()
		return
	}
	if len(c.idle) < MaxIdle && (c.persistent() || !c.opt.ConnPerOp) {
		c.idle = append(c.idle, l)
		c.mu.Unlock()
		return
	}
	if len(c.spare) < MaxIdle {
		c.mu.Unlock()
		l.reset()
		c.mu.Lock()
		c.spare = append(c.spare, l)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	l.destroy()
}

// request describes one operation.
type request struct {
	op        proto.Op
	id        []byte
	data      []byte // ADD only
	timeoutMS uint32 // ADD only
	// resent: the C library's front sent it on a kept connection that
	// died; this is the one resend, on a new connection (Resent)
	resent bool
}

// Do performs one transaction: op on id (with data and lifetimeMS for
// ADD). On success handle is called with the response payload (non-empty,
// at most 32768 bytes) while the connection is held; the payload must not
// be retained. Errors: ErrClosed, ErrInvalid (nothing sent), ErrUnavailable
// (empty payload), ErrBadResponse, or an *OpError for dial and network
// failures and timeouts. It is the exchange goimpl/client builds on.
func (c *Ctx) Do(ctx context.Context, op proto.Op, id, data []byte, lifetimeMS uint32, handle func([]byte)) error {
	if !validID(id) || (op == proto.OpAdd && (len(data) < 1 || proto.AddRequestSize(len(id), len(data)) > proto.MaxPayload)) || !op.Valid() {
		return ErrInvalid
	}
	return c.roundTrip(ctx, &request{op: op, id: id, data: data, timeoutMS: lifetimeMS}, handle)
}

func (c *Ctx) roundTrip(ctx context.Context, rq *request, handle func([]byte)) error {
	if c == nil || c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return &OpError{Op: rq.op.String(), Addr: c.addr, Err: err}
	}
	if c.stalled.Load() {
		return &OpError{Op: rq.op.String(), Addr: c.addr, Err: ErrStalled}
	}
	uid := c.uid.Add(1)
	// Raw waits only for an operation alone on the context, and when
	// Options.RawWait agrees (the C library: alone in the engine).
	raw := c.busy.Add(1) == 1 && c.opt.RawWait != nil && c.opt.RawWait()
	defer c.busy.Add(-1)
	var l link
	var reused bool
	var err error
	retried := rq.resent
	if retried {
		c.dropIdle()
		l, err = c.dial(ctx)
	} else {
		l, reused, err = c.acquire(ctx)
	}
	if err != nil {
		c.dialFailed(ctx, err)
		return err
	}
	for {
		start := time.Now()
		b := budget{t: c.bound(start), raw: raw}
		b.deadline = start.Add(b.t)
		if d, ok := ctx.Deadline(); ok && d.Before(b.deadline) {
			b.deadline = d
		}
		resp, xerr := l.exchange(ctx, *rq, uid, b)
		if xerr == nil {
			c.observe(start)
			if len(resp) == 0 {
				c.release(l, true) // dc_client without a server; still in step
				return &OpError{Op: rq.op.String(), Addr: c.addr, Err: ErrUnavailable}
			}
			handle(resp)
			c.release(l, true)
			return nil
		}
		c.release(l, false)
		if xerr.kind == failTimeout && !callerExpired(ctx) {
			c.stall(b.t, xerr.err)
		}
		if xerr.kind == failNet {
			// The server probably went away: its other idle
			// connections are dead too.
			c.dropIdle()
		}
		opErr := &OpError{Op: rq.op.String(), Addr: c.addr, Err: xerr.err}
		if xerr.kind != failNet || retried || c.closed.Load() {
			return opErr
		}
		if c.persistent() {
			if c.flags&FlagRetry == 0 {
				return opErr
			}
		} else if !reused || xerr.answered {
			// A fresh connection per operation is the contract: a
			// kept one that died before its answer began is retried
			// once on a new one, as if it had never been kept.
			return opErr
		}
		retried = true
		if l, err = c.dial(ctx); err != nil {
			c.dialFailed(ctx, err)
			return err
		}
	}
}

func (c *Ctx) clearReget() {
	if c.regetSet.Load() {
		c.regetMu.Lock()
		c.regetSet.Store(false)
		c.regetMu.Unlock()
	}
}

func (c *Ctx) setReget(id, data []byte) {
	c.regetMu.Lock()
	c.regetID = append(c.regetID[:0], id...)
	c.regetData = append(c.regetData[:0], data...)
	c.regetSet.Store(true)
	c.regetMu.Unlock()
}

// AddSession stores a session (DC_CTX_add_session). It returns false
// without I/O if id or data is empty or 8+len(id)+len(data) > 32768, and
// true iff the server answered exactly 0x00. A timeout under 1000 ms is
// replaced by Options.DefaultLifetime (see Options); others are sent
// truncated to 32 bits (the server answers 0x66 above 7 days). Never aborts
// (E-7).
func (c *Ctx) AddSession(id, data []byte, timeoutMS uint64) bool {
	return c.addSession(id, data, timeoutMS, false)
}

func (c *Ctx) addSession(id, data []byte, timeoutMS uint64, resent bool) bool {
	if c == nil {
		return false
	}
	c.clearReget()
	if len(id) < 1 || len(data) < 1 || proto.AddRequestSize(len(id), len(data)) > proto.MaxPayload {
		return false
	}
	if timeoutMS < 1000 {
		timeoutMS = uint64(c.opt.DefaultLifetime / time.Millisecond)
	}
	return c.simple(context.Background(), &request{op: proto.OpAdd, id: id, data: data, timeoutMS: uint32(timeoutMS), resent: resent}) == 0
}

// RemoveSession removes a session (DC_CTX_remove_session): true iff the
// server answered exactly 0x00 (removed).
func (c *Ctx) RemoveSession(id []byte) bool { return c.removeSession(id, false) }

func (c *Ctx) removeSession(id []byte, resent bool) bool {
	if c == nil {
		return false
	}
	c.clearReget()
	if !validID(id) {
		return false
	}
	return c.simple(context.Background(), &request{op: proto.OpRemove, id: id, resent: resent}) == 0
}

// HasSession asks whether a session exists (DC_CTX_has_session): 1 if the
// answer is exactly 0x00, 0 if it is 0x01 or longer than one byte, -1 for
// any other byte (0x02 from dc_client), an empty answer or a failure.
func (c *Ctx) HasSession(id []byte) int { return c.hasSession(id, false) }

func (c *Ctx) hasSession(id []byte, resent bool) int {
	if c == nil {
		return -1
	}
	c.clearReget()
	if !validID(id) {
		return -1
	}
	switch r := c.simple(context.Background(), &request{op: proto.OpHave, id: id, resent: resent}); r {
	case 0x00:
		return 1
	case 0x01, -2:
		return 0
	}
	return -1
}

// simple runs a request whose answer is a result byte: it returns that
// byte, -2 for an answer longer than one byte, -1 on failure.
func (c *Ctx) simple(ctx context.Context, rq *request) int {
	r := -1
	err := c.roundTrip(ctx, rq, func(p []byte) {
		if len(p) == 1 {
			r = int(p[0])
		} else {
			r = -2
		}
	})
	if err != nil {
		return -1
	}
	return r
}

func validID(id []byte) bool { return len(id) >= 1 && len(id) <= proto.MaxPayload }

// GetSession fetches a session (DC_CTX_get_session). On success used is
// the session's full length and min(used, len(dst)) bytes are copied to dst
// (dst may be nil to ask only for the length). It fails (used 0, dst
// untouched) on any failure or an answer shorter than 5 bytes (a miss is
// the byte 0x01; E-15).
func (c *Ctx) GetSession(id, dst []byte) (used int, ok bool) {
	return c.getSession(id, dst, false)
}

func (c *Ctx) getSession(id, dst []byte, resent bool) (used int, ok bool) {
	if c == nil {
		return 0, false
	}
	if !validID(id) {
		c.clearReget()
		return 0, false
	}
	err := c.roundTrip(context.Background(), &request{op: proto.OpGet, id: id, resent: resent}, func(p []byte) {
		if len(p) < MinGetResponse {
			return
		}
		used, ok = len(p), true
		copy(dst, p)
		if len(id) <= proto.MaxIDLen {
			c.setReget(id, p)
		} else {
			c.clearReget()
		}
	})
	if err != nil || !ok {
		c.clearReget()
		return 0, false
	}
	return used, true
}

// RegetSession returns the response of the last GET again, without network
// I/O (DC_CTX_reget_session), if that GET succeeded for the same id and no
// other operation completed on the Ctx since (see Ctx).
func (c *Ctx) RegetSession(id, dst []byte) (used int, ok bool) {
	if c == nil || !c.regetSet.Load() {
		return 0, false
	}
	c.regetMu.Lock()
	defer c.regetMu.Unlock()
	if !c.regetSet.Load() || !bytes.Equal(id, c.regetID) {
		return 0, false
	}
	copy(dst, c.regetData)
	return len(c.regetData), true
}

// callerExpired reports whether ctx has ended or its deadline has passed:
// an exchange that timed out then waited for the caller, not for a
// stalled server. (The deadline is read too: the exchange's own timer at
// that deadline can fire before the context's, and Err is still nil.)
func callerExpired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
