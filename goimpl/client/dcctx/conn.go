// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Transport selects how a Ctx talks to its server. The semantics (pool,
// retry, reget, timeouts) are the same whichever it is.
type Transport uint8

const (
	// TransportDefault is TransportCaller.
	TransportDefault Transport = iota
	// TransportCaller drives goimpl/nal sockets on the calling goroutine's
	// thread, waiting in ppoll(2): no goroutine handoff per exchange. It is
	// what the C library uses (a C caller's thread would otherwise wait
	// for the Go runtime's poller to wake it, 3-5 times the socket round
	// trip) and the default of New.
	TransportCaller Transport = iota
	// TransportNet uses Go's net package: the right choice for Go programs
	// with many goroutines (goimpl/client's Dial uses it).
	TransportNet
)

// A link is one connection to the server, made by a transport. It is used
// by one operation at a time. reset closes the socket but keeps the
// buffers, so that the link can be dialled again; destroy releases
// everything.
type link interface {
	// exchange sends the request with uid and returns the payload of its
	// response (valid until the link is used again), bounded by b (which
	// it extends when its wait ended late) and ctx. The socket is looked
	// at once more before the budget is declared spent. An empty payload
	// (dc_client without a server) is returned as is: the stream is still
	// in step.
	exchange(ctx context.Context, rq request, uid uint32, b budget) ([]byte, *exchangeError)
	reset()
	destroy()
	fd() int // the socket, or -1
	// detach gives up the socket of a clean, established link without
	// closing it (the link is then as after reset), or returns -1 and
	// changes nothing.
	detach() int
	// alive checks, without blocking, that an idle link can carry the
	// next request: the peer has not closed it and sent nothing.
	alive() bool
}

// transport makes links to one target.
type transport interface {
	// dial connects; reuse is a reset link of this transport, or nil.
	dial(ctx context.Context, reuse link) (link, error)
}

func newTransport(kind Transport, tgt nal.Target, opt Options) (transport, error) {
	if kind == TransportNet {
		t := &netTransport{network: tgt.Network(), addr: tgt.Addr}
		t.dialer.Timeout = opt.ConnectTimeout
		return t, nil
	}
	a := nal.NewAddress()
	if !a.Create(tgt.Canonical(), linkBufferSize) {
		return nil, errors.New("address refused by libnal")
	}
	return &nalTransport{addr: a, connTO: opt.ConnectTimeout}, nil
}

// failure classes of one exchange
type failKind uint8

const (
	failNone    failKind = iota
	failNet              // dead or corrupt connection: worth one reconnect with RETRY
	failTimeout          // deadline passed: the peer is alive but silent; no retry
	failReject           // answer does not belong to the request: drop the connection
)

// exchangeError is the internal error of one exchange.
type exchangeError struct {
	kind     failKind
	err      error
	answered bool // some bytes of an answer had arrived
}

func (e *exchangeError) Error() string { return e.err.Error() }
func (e *exchangeError) Unwrap() error { return e.err }

func classify(err error) *exchangeError {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &exchangeError{kind: failTimeout, err: err}
	}
	return &exchangeError{kind: failNet, err: err}
}

// idleAlive peeks at an idle socket without blocking: nothing to read
// (EAGAIN) means usable; EOF, an error or unexpected bytes mean discard.
func idleAlive(fd int) bool {
	if fd < 0 {
		return false
	}
	var b [1]byte
	for {
		// recv(2) without an address: unix.Recvfrom allocates the
		// peer's, on every operation of a kept connection
		_, _, err := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if err == unix.EINTR {
			continue
		}
		return err == unix.EAGAIN
	}
}

// encode appends rq's payload (ADD's is built in scratch) for a writer.
func (rq *request) payload(scratch *[]byte) []byte {
	if rq.op != proto.OpAdd {
		return rq.id
	}
	*scratch = proto.AppendAddRequest((*scratch)[:0], rq.timeoutMS, rq.id, rq.data)
	return *scratch
}

// ---- Go's net package ----

type netTransport struct {
	network, addr string
	dialer        net.Dialer
	// timeout bounds a dial when dialer.Timeout is 0 (the Ctx's adaptive
	// connect bound)
	timeout func() time.Duration
}

// netLink is a net.Conn with its buffers.
type netLink struct {
	nc    net.Conn
	rd    *proto.Reader
	nread int    // bytes read in the current exchange
	wbuf  []byte // the encoded request
	pbuf  []byte // ADD payload scratch
}

func (t *netTransport) dial(ctx context.Context, reuse link) (link, error) {
	d := &t.dialer
	if d.Timeout <= 0 && t.timeout != nil {
		d = &net.Dialer{Timeout: t.timeout()}
	}
	nc, err := d.DialContext(ctx, t.network, t.addr)
	if err != nil {
		return nil, err
	}
	l, _ := reuse.(*netLink)
	if l == nil {
		l = &netLink{}
		l.rd = proto.NewReader(l, proto.WantResponses)
	}
	l.nc = nc
	return l, nil
}

// Read lets the proto.Reader read from whichever socket the link holds.
func (l *netLink) Read(p []byte) (int, error) {
	n, err := l.nc.Read(p)
	l.nread += n
	return n, err
}

func (l *netLink) reset() {
	if l.nc != nil {
		l.nc.Close()
		l.nc = nil
	}
}

func (l *netLink) destroy() { l.reset() }

func (l *netLink) fd() int {
	fd := -1
	if sc, ok := l.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(s uintptr) { fd = int(s) })
		}
	}
	return fd
}

// A socket of Go's net package stays with its poller: it is never handed
// over.
func (l *netLink) detach() int { return -1 }

func (l *netLink) alive() bool { return idleAlive(l.fd()) }

func (l *netLink) exchange(ctx context.Context, rq request, uid uint32, b budget) ([]byte, *exchangeError) {
	resp, xerr := l.exchange1(ctx, rq, uid, b)
	if xerr != nil && l.nread > 0 {
		xerr.answered = true
	}
	return resp, xerr
}

func (l *netLink) exchange1(ctx context.Context, rq request, uid uint32, b budget) ([]byte, *exchangeError) {
	l.nread = 0
	var err error
	l.wbuf, err = proto.AppendMessage(l.wbuf[:0], &proto.Message{UID: uid, Op: rq.op, Payload: rq.payload(&l.pbuf)})
	if err != nil { // callers check sizes; this is a safety net
		return nil, &exchangeError{kind: failReject, err: ErrInvalid}
	}
	if ctx.Done() == nil {
		return l.roundTrip(ctx, uid, rq.op, b)
	}
	if err := ctx.Err(); err != nil {
		return nil, &exchangeError{kind: failTimeout, err: err}
	}
	nc := l.nc
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	resp, xerr := l.roundTrip(ctx, uid, rq.op, b)
	if !stop() {
		// Cancelled: the socket's deadline is (or is about to be) in
		// the past; whatever happened, do not reuse it.
		if xerr == nil || xerr.kind != failReject {
			return nil, &exchangeError{kind: failTimeout, err: context.Cause(ctx)}
		}
	}
	return resp, xerr
}

// roundTrip writes the request in wbuf with one Write and reads the one
// response, checking that it belongs to the request. A read that timed out
// late gets b's extensions, and then one last look at the socket.
func (l *netLink) roundTrip(ctx context.Context, uid uint32, op proto.Op, b budget) ([]byte, *exchangeError) {
	if err := l.nc.SetDeadline(b.deadline); err != nil {
		return nil, classify(err)
	}
	if _, err := l.nc.Write(l.wbuf); err != nil {
		return nil, classify(err)
	}
	final := false
	var m *proto.Message
	for {
		var err error
		m, err = l.rd.ReadMessage()
		if err == nil {
			break
		}
		xerr := classify(err)
		if xerr.kind != failTimeout || final || ctx.Err() != nil {
			return nil, xerr
		}
		next := time.Now()
		if b.extend(next) {
			next = b.deadline
		} else {
			final, next = true, next.Add(time.Millisecond)
		}
		if err := l.nc.SetReadDeadline(next); err != nil {
			return nil, xerr
		}
	}
	if m.UID != uid || m.Op != op || l.rd.Buffered() != 0 {
		return nil, &exchangeError{kind: failReject, err: ErrBadResponse}
	}
	return m.Payload, nil
}
