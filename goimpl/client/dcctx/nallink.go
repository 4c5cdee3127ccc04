// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
)

// The calling-thread transport: a goimpl/nal connection, a DC_PLUG and a
// selector per link, the exchange waiting in ppoll(2) inside
// Selector.Select, as the original library did. The connect is
// non-blocking and counts within the first exchange's bound (plus
// ConnectTimeout, when that is set).

// linkBufferSize is the size of each nal link's read and send buffers; the
// plug moves larger messages through them frame by frame.
const linkBufferSize = 4096

type nalTransport struct {
	addr   *nal.Address // numeric: dialling does no lookup
	connTO time.Duration
}

type nalLink struct {
	sel    *nal.Selector
	p      *plug.Plug
	fresh  bool          // dialled, no exchange yet: the connect may be under way
	connTO time.Duration // added to the first exchange's deadline
	resp   []byte        // the last response's payload
	got    bool          // bytes of the answer arrived in this exchange
	pbuf   []byte        // ADD payload scratch
}

var (
	errConnect  = errors.New("cannot connect")
	errSelect   = errors.New("poll failed")
	errWrite    = errors.New("cannot send the request")
	errDeadline = os.ErrDeadlineExceeded
)

func (t *nalTransport) dial(_ context.Context, reuse link) (link, error) {
	if l, _ := reuse.(*nalLink); l != nil {
		// the same connection, plug and selector, connected anew
		if l.p.Conn().Create(t.addr) && l.p.ToSelect(l.sel) {
			l.fresh = true
			return l, nil
		}
		l.destroy()
		return nil, errConnect
	}
	c := nal.NewConnection()
	if !c.Create(t.addr) {
		c.Free()
		return nil, errConnect
	}
	sel := nal.NewSelectorFdPoll()
	p := plug.New(c, plug.FlagToServer)
	if p == nil || !p.ToSelect(sel) {
		c.Free()
		sel.Free()
		return nil, errConnect
	}
	return &nalLink{sel: sel, p: p, fresh: true, connTO: t.connTO}, nil
}

// connected waits (until deadline) for the non-blocking connect to
// finish, for New's first connection, which must fail at once when nobody
// listens.
func (l *nalLink) connected(deadline time.Time) error {
	c := l.p.Conn()
	for !c.IsEstablished() {
		rest := time.Until(deadline)
		if rest <= 0 {
			return errDeadline
		}
		if n, err := l.sel.Select(uint64(rest/time.Microsecond)+1, true); n < 0 && err == nil {
			return errSelect
		} else if n > 0 && !c.IO() {
			return errConnect
		}
	}
	return nil
}

// reset closes the descriptor and unbinds; the buffers stay.
func (l *nalLink) reset() { l.p.Conn().Reset() }

func (l *nalLink) destroy() {
	l.p.Free()
	l.sel.Free()
}

func (l *nalLink) fd() int {
	if st := l.p.Conn().Export(); st.Live && st.FD >= 0 {
		return st.FD
	}
	return -1
}

func (l *nalLink) detach() int {
	if l.fresh || l.p.Partial() || l.p.ReadState() != plug.ReadEmpty {
		return -1
	}
	return l.p.Conn().Detach()
}

// cancelSlice bounds one wait when ctx can be cancelled.
const cancelSlice = 20 * time.Millisecond

func (l *nalLink) alive() bool { return idleAlive(l.fd()) }

func (l *nalLink) exchange(ctx context.Context, rq request, uid uint32, b budget) ([]byte, *exchangeError) {
	resp, xerr := l.exchange1(ctx, rq, uid, b)
	if xerr != nil && (l.got || l.p.Partial()) {
		xerr.answered = true
	}
	return resp, xerr
}

func (l *nalLink) exchange1(ctx context.Context, rq request, uid uint32, b budget) ([]byte, *exchangeError) {
	l.got = false
	l.sel.SetRaw(b.raw)
	cmd := rq.op.Cmd()
	if !l.p.Write(false, uid, cmd, rq.payload(&l.pbuf)) || !l.p.Commit() {
		return nil, &exchangeError{kind: failNet, err: errWrite}
	}
	if l.fresh {
		l.fresh = false
		b.deadline = b.deadline.Add(l.connTO)
	} else if !l.p.Conn().WriteNow() || !l.p.Flush() {
		// established: the request goes out now, without a poll for
		// writability first (what does not fit waits for the loop's IO)
		return nil, &exchangeError{kind: failNet, err: errWrite}
	}
	done := ctx.Done()
	final := false // the last look at the socket, once the budget is spent
	for {
		now := time.Now()
		rest := b.deadline.Sub(now)
		if rest <= 0 {
			if b.extend(now) {
				continue
			}
			if final {
				return nil, &exchangeError{kind: failTimeout, err: l.silence()}
			}
			final, rest = true, 0
		}
		if done != nil {
			if err := ctx.Err(); err != nil {
				return nil, &exchangeError{kind: failTimeout, err: context.Cause(ctx)}
			}
			rest = min(rest, cancelSlice)
		}
		n, err := l.sel.Select(uint64(rest/time.Microsecond)+1, true)
		if n < 0 && err == nil {
			return nil, &exchangeError{kind: failNet, err: errSelect}
		}
		if n <= 0 {
			continue // timeout slice or EINTR: the deadline decides
		}
		if !l.p.IO() {
			err := l.p.Err()
			if err == nil {
				err = io.EOF
			}
			return nil, &exchangeError{kind: failNet, err: err}
		}
		if l.p.Partial() {
			l.got = true
		}
		ruid, rcmd, data, ok := l.p.Read(false)
		if !ok {
			continue
		}
		if ruid != uid || rcmd != cmd {
			return nil, &exchangeError{kind: failReject, err: ErrBadResponse}
		}
		l.resp = append(l.resp[:0], data...)
		// more than the one response: the stream is out of step
		if !l.p.Consume() || l.p.ReadState() != plug.ReadEmpty || l.p.Conn().Read().NotEmpty() {
			return nil, &exchangeError{kind: failReject, err: ErrBadResponse}
		}
		return l.resp, nil
	}
}

// silenceError is a timed-out exchange's error: where its bytes were when
// the bound ran out, which says whether the request never left, the
// server did not read it, or an answer came and was not noticed. It is an
// os.ErrDeadlineExceeded.
type silenceError struct {
	unsent  int // request bytes still in the connection's send buffer
	unread  int // sent, not yet read by the server (SIOCOUTQ: on a unix socket the memory it holds, not its length)
	waiting int // answer bytes received, not read (SIOCINQ)
}

func (e *silenceError) Error() string { return os.ErrDeadlineExceeded.Error() + " " + e.where() }

// where is the bytes' whereabouts, in parentheses (-1: unknown).
func (e *silenceError) where() string {
	return fmt.Sprintf("(request bytes not sent %d, sent and not read by the server %d, answer bytes not read %d)",
		e.unsent, e.unread, e.waiting)
}

func (e *silenceError) Unwrap() error { return os.ErrDeadlineExceeded }

func (l *nalLink) silence() error {
	e := &silenceError{unread: -1, waiting: -1}
	if rb := l.p.Conn().Send(); rb != nil {
		e.unsent = int(rb.Used())
	}
	if fd := l.fd(); fd >= 0 {
		if n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ); err == nil {
			e.unread = n
		}
		if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil {
			e.waiting = n
		}
	}
	return e
}
