package client

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

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

// maxIdle is how many idle connections a persistent Ctx keeps. Concurrent
// operations beyond that open extra connections, closed after use.
const maxIdle = 32

// minGetResponse: GET answers shorter than this are failures (a miss is the
// single byte 0x01; sessions of 1..4 bytes are unreadable, EDGES E-15).
const minGetResponse = 5

// Ctx has the semantics of DC_CTX (LIBDISTCACHE.md §2 with the EDGES.md
// fixes) and is safe for concurrent use by many goroutines.
//
// Connections. With flags 0 each operation dials, exchanges one request and
// closes. With FlagPersistent the Ctx keeps a pool of up to 32 idle
// connections: an operation takes one (or dials when none is idle), and
// returns it after a clean exchange, so concurrent operations never share a
// connection mid-exchange. A connection whose exchange failed is closed.
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
	tgt   nal.Target
	addr  string // the target string, for errors
	flags uint32
	opt   Options

	uid    atomic.Uint32
	pid    atomic.Int64
	closed atomic.Bool
	dialer net.Dialer

	mu   sync.Mutex
	idle []*conn // persistent mode

	shells sync.Pool // *conn without a socket, for reuse of buffers

	regetSet  atomic.Bool
	regetMu   sync.Mutex
	regetID   []byte
	regetData []byte
}

// New creates a context for target (DC_CTX_new). It fails if target is not
// a connectable address (goimpl/nal's ParseTarget: host names are resolved
// here, once), or if FlagPersistent is set without
// FlagLate and the first connection cannot be made within ConnectTimeout.
func New(target string, flags uint32, opt *Options) (*Ctx, error) {
	o := opt.resolved()
	tgt, err := nal.ParseTarget(context.Background(), target)
	if err != nil {
		return nil, &OpError{Op: "parse", Addr: target, Err: err}
	}
	c := &Ctx{tgt: tgt, addr: target, flags: flags, opt: o}
	c.dialer.Timeout = o.ConnectTimeout
	c.pid.Store(int64(os.Getpid()))
	c.shells.New = func() any { return newConn() }
	if c.persistent() && flags&FlagLate == 0 {
		cn, err := c.dial(context.Background())
		if err != nil {
			return nil, err
		}
		c.idle = append(c.idle, cn)
	}
	return c, nil
}

func (c *Ctx) persistent() bool { return c.flags&FlagPersistent != 0 }

// Close closes the idle connections (DC_CTX_free). Operations in flight
// finish; later ones fail with ErrClosed. Safe to call twice and on nil.
func (c *Ctx) Close() {
	if c == nil || c.closed.Swap(true) {
		return
	}
	c.dropIdle()
}

func (c *Ctx) dropIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cn := range idle {
		cn.nc.Close()
	}
}

func (c *Ctx) dial(ctx context.Context) (*conn, error) {
	nc, err := c.dialer.DialContext(ctx, c.tgt.Network(), c.tgt.Addr)
	if err != nil {
		return nil, &OpError{Op: "dial", Addr: c.addr, Err: err}
	}
	cn := c.shells.Get().(*conn)
	cn.nc = nc
	return cn, nil
}

// acquire returns an idle pooled connection or a new one.
func (c *Ctx) acquire(ctx context.Context) (cn *conn, err error) {
	if c.persistent() {
		if c.flags&FlagPIDCheck != 0 {
			if pid := int64(os.Getpid()); pid != c.pid.Load() {
				c.pid.Store(pid)
				c.dropIdle()
			}
		}
		c.mu.Lock()
		if n := len(c.idle); n > 0 {
			cn = c.idle[n-1]
			c.idle[n-1] = nil
			c.idle = c.idle[:n-1]
			c.mu.Unlock()
			return cn, nil
		}
		c.mu.Unlock()
	}
	return c.dial(ctx)
}

// release ends an operation's use of cn: a clean connection goes back to
// the pool (persistent mode), anything else is closed; the buffers of a
// clean connection are kept for reuse.
func (c *Ctx) release(cn *conn, clean bool) {
	if clean && c.persistent() && !c.closed.Load() {
		c.mu.Lock()
		if len(c.idle) < maxIdle && !c.closed.Load() {
			c.idle = append(c.idle, cn)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
	cn.nc.Close()
	cn.nc = nil
	if clean {
		c.shells.Put(cn)
	}
}

// request describes one operation.
type request struct {
	op        proto.Op
	id        []byte
	data      []byte // ADD only
	timeoutMS uint32 // ADD only
}

// roundTrip performs one transaction. On success handle is called with the
// response payload (non-empty, at most 32768 bytes) while the connection is
// held; the payload must not be retained. Errors: ErrClosed, ErrUnavailable
// (empty payload), ErrBadResponse, or an *OpError for dial and network
// failures.
func (c *Ctx) roundTrip(ctx context.Context, rq *request, handle func([]byte)) error {
	if c == nil || c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return &OpError{Op: rq.op.String(), Addr: c.addr, Err: err}
	}
	uid := c.uid.Add(1)
	cn, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	if rq.op == proto.OpAdd {
		cn.pbuf = proto.AppendAddRequest(cn.pbuf[:0], rq.timeoutMS, rq.id, rq.data)
		cn.wbuf, err = proto.AppendMessage(cn.wbuf[:0], &proto.Message{UID: uid, Op: rq.op, Payload: cn.pbuf})
	} else {
		cn.wbuf, err = proto.AppendMessage(cn.wbuf[:0], &proto.Message{UID: uid, Op: rq.op, Payload: rq.id})
	}
	if err != nil { // callers check sizes; this is a safety net
		c.release(cn, true)
		return ErrInvalid
	}
	retried := false
	for {
		resp, xerr := c.exchange(ctx, cn, uid, rq.op)
		if xerr == nil {
			if len(resp) == 0 {
				c.release(cn, true) // dc_client without a server; still in step
				return &OpError{Op: rq.op.String(), Addr: c.addr, Err: ErrUnavailable}
			}
			handle(resp)
			c.release(cn, true)
			return nil
		}
		c.release(cn, false)
		if xerr.kind == failNet && c.persistent() {
			// The server probably went away: its other idle
			// connections are dead too.
			c.dropIdle()
		}
		opErr := &OpError{Op: rq.op.String(), Addr: c.addr, Err: xerr.err}
		if xerr.kind != failNet || retried || !c.persistent() || c.flags&FlagRetry == 0 || c.closed.Load() {
			return opErr
		}
		retried = true
		ncn, err := c.dial(ctx)
		if err != nil {
			return err
		}
		ncn.wbuf = append(ncn.wbuf[:0], cn.wbuf...)
		cn = ncn
	}
}

// exchange runs one exchange on cn bounded by IOTimeout and ctx.
func (c *Ctx) exchange(ctx context.Context, cn *conn, uid uint32, op proto.Op) ([]byte, *exchangeError) {
	deadline := time.Now().Add(c.opt.IOTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Done() == nil {
		return cn.exchange(cn.wbuf, uid, op, deadline)
	}
	if err := ctx.Err(); err != nil {
		return nil, &exchangeError{failTimeout, err}
	}
	nc := cn.nc
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	resp, xerr := cn.exchange(cn.wbuf, uid, op, deadline)
	if !stop() {
		// Cancelled: the socket's deadline is (or is about to be) in
		// the past; whatever happened, do not reuse it.
		if xerr == nil || xerr.kind != failReject {
			return nil, &exchangeError{failTimeout, context.Cause(ctx)}
		}
	}
	return resp, xerr
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
	return c.simple(context.Background(), &request{op: proto.OpAdd, id: id, data: data, timeoutMS: uint32(timeoutMS)}) == 0
}

// RemoveSession removes a session (DC_CTX_remove_session): true iff the
// server answered exactly 0x00 (removed).
func (c *Ctx) RemoveSession(id []byte) bool {
	if c == nil {
		return false
	}
	c.clearReget()
	if !validID(id) {
		return false
	}
	return c.simple(context.Background(), &request{op: proto.OpRemove, id: id}) == 0
}

// HasSession asks whether a session exists (DC_CTX_has_session): 1 if the
// answer is exactly 0x00, 0 if it is 0x01 or longer than one byte, -1 for
// any other byte (0x02 from dc_client), an empty answer or a failure.
func (c *Ctx) HasSession(id []byte) int {
	if c == nil {
		return -1
	}
	c.clearReget()
	if !validID(id) {
		return -1
	}
	switch r := c.simple(context.Background(), &request{op: proto.OpHave, id: id}); r {
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
	if c == nil {
		return 0, false
	}
	if !validID(id) {
		c.clearReget()
		return 0, false
	}
	err := c.roundTrip(context.Background(), &request{op: proto.OpGet, id: id}, func(p []byte) {
		if len(p) < minGetResponse {
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
