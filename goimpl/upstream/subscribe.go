// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Subscriptions to removal notices (proto.FeatureNotify, doc/EXTENSIONS.md),
// for the near cache (near.go). Each server that announces the feature on
// the connection requests use gets a second connection of its own, which
// asks the features again (it may reach another program), subscribes, and
// from then on only carries the server's notices: each names a session
// that was removed or taken, and goes to the NearSink. A 1.5 server, or
// one of ours without the feature, never sees a subscription: its
// connection asks the features (a 1.5 GET) and nothing else.
//
// A notice that arrives while a near cache answers is read by the
// answering call itself (NearState reads what the socket holds, without
// waiting), so a removal answered to its client before this host's next
// GET came is seen by that GET whenever its notice has reached this host.

// NearSink is told what the subscriptions learn: Invalidate of each
// notice's id (the id is valid for the call only), Flush when a
// subscription ends. Both are called with the subscription's lock held:
// they must not call the Upstream.
type NearSink interface {
	Invalidate(id []byte)
	Flush()
}

// NearState names the subscription under which a near cache's entries
// are exact: the server requests go to, its connection and the
// subscription on it. Two states are equal only when nothing the near
// cache depends on changed between them; the zero value (no live
// subscription) is never Live.
type NearState struct {
	l       *link
	linkGen uint64
	subGen  uint64
}

// Live reports whether a subscription is live.
func (s NearState) Live() bool { return s.l != nil }

// subscription is one link's subscription (l.sub).
type subscription struct {
	live    bool
	gen     uint64
	nc      net.Conn
	rc      syscall.RawConn // nil when the connection is not a plain socket (TLS)
	drainFn func(fd uintptr)
	failed  error // what drain found wrong (the reader then ends it)
	asm     proto.Assembler
	buf     []byte // bytes read and not yet decoded
	uid     uint32 // the last notice's
	tmp     [4096]byte
}

// errNotify says why a subscription stream is not acceptable.
type errNotify string

func (e errNotify) Error() string { return string(e) }

// SetNear sends the notices of every server that announces them to sink,
// from now on; nil is not allowed. Call it once, before requests come.
func (u *Upstream) SetNear(sink NearSink) {
	u.sink = sink
	for _, l := range u.links {
		go l.subscribeLoop()
	}
}

// NearState is the state of the subscription on the server requests go
// to now (not Live when there is none). Notices that have arrived are
// handed to the sink first.
func (u *Upstream) NearState() NearState {
	l := u.pick()
	if l == nil || u.sink == nil {
		return NearState{}
	}
	l.smu.Lock()
	defer l.smu.Unlock()
	s := &l.sub
	if s.live && s.rc != nil {
		s.rc.Control(s.drainFn)
		if s.failed != nil {
			l.endSub(s.failed)
		}
	}
	if !s.live {
		return NearState{}
	}
	l.mu.Lock()
	gen, up := l.gen, l.nc != nil
	l.mu.Unlock()
	if !up {
		return NearState{}
	}
	return NearState{l: l, linkGen: gen, subGen: s.gen}
}

// subscribeLoop keeps l's subscription while its server announces
// notices, until the Upstream closes.
func (l *link) subscribeLoop() {
	for {
		var wait time.Duration
		if l.state.Load() == stateUp {
			ctx, cancel := context.WithTimeout(context.Background(), max(time.Second, l.u.timeout))
			bits, err := l.features(ctx)
			cancel()
			switch {
			case err != nil:
				wait = l.u.retry
			case bits&proto.FeatureNotify == 0:
				wait = l.u.retry // asked again on the next connection
			default:
				start := time.Now()
				l.subscribe()
				if time.Since(start) < l.u.retry {
					wait = l.u.retry
				}
			}
		} else {
			wait = l.u.retry
		}
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-l.u.stop:
			t.Stop()
			return
		case <-l.subKick:
			t.Stop()
		case <-t.C:
		}
	}
}

// subscribe makes, uses and ends one subscription.
func (l *link) subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Second, min(l.u.retry, 5*time.Second)))
	nc, err := l.srv.Dial(ctx)
	cancel()
	if err != nil {
		return // the requests' connection reports the server's troubles
	}
	select {
	case <-l.u.stop:
		nc.Close()
		return
	default:
	}
	rest, err := handshakeSub(nc, max(time.Second, 10*l.u.timeout))
	if err != nil {
		nc.Close()
		if _, ok := err.(errNotify); ok {
			l.u.log.Printf("Warning, the server '%s' refused a subscription to its removals: %v", l.srv.Name, err)
		}
		return
	}
	l.smu.Lock()
	select {
	case <-l.u.stop: // closed meanwhile: closeSub has run
		l.smu.Unlock()
		nc.Close()
		return
	default:
	}
	s := &l.sub
	s.gen++
	s.live, s.nc, s.failed, s.uid = true, nc, nil, 0
	s.asm = proto.Assembler{Want: proto.WantResponses}
	s.buf = append(s.buf[:0], rest...)
	s.rc = nil
	switch c := nc.(type) {
	case *net.TCPConn:
		s.rc, _ = c.SyscallConn()
	case *net.UnixConn:
		s.rc, _ = c.SyscallConn()
	}
	if s.drainFn == nil {
		s.drainFn = func(fd uintptr) { l.drain(int(fd)) }
	}
	l.decode()
	if s.failed != nil {
		l.endSub(s.failed)
		l.smu.Unlock()
		return
	}
	l.smu.Unlock()
	l.u.log.Printf("Info, subscribed to the removals of the server '%s': the near cache is on", l.srv.Name)
	err = l.readNotices(nc, s.rc)
	l.smu.Lock()
	if s.live && s.nc == nc {
		l.endSub(err)
	}
	l.smu.Unlock()
}

// handshakeSub asks a new connection's features and subscribes when they
// include notices; it returns the bytes read past the subscription's
// answer (notices already).
func handshakeSub(nc net.Conn, t time.Duration) ([]byte, error) {
	nc.SetDeadline(time.Now().Add(t))
	defer nc.SetDeadline(time.Time{})
	rd := proto.NewReader(nc, proto.WantResponses)
	ask := func(uid uint32, op proto.Op, payload []byte) (*proto.Message, error) {
		b, _ := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: payload})
		if _, err := nc.Write(b); err != nil {
			return nil, err
		}
		m, err := rd.ReadMessage()
		if err != nil {
			return nil, err
		}
		if m.UID != uid || m.Op != op {
			return nil, errNotify(fmt.Sprintf("answer uid %d op %v to uid %d op %v", m.UID, m.Op, uid, op))
		}
		return m, nil
	}
	m, err := ask(1, proto.OpGet, proto.FeaturesID)
	if err != nil {
		return nil, err
	}
	if proto.ParseFeatures(m.Payload)&proto.FeatureNotify == 0 {
		return nil, errors.New("no notices announced") // not logged: a downgrade
	}
	if m, err = ask(2, proto.OpSubscribe, nil); err != nil {
		return nil, err
	}
	if len(m.Payload) != 1 || m.Payload[0] != proto.ResultOK {
		return nil, errNotify(fmt.Sprintf("subscription answered % x", m.Payload))
	}
	return append([]byte(nil), rd.Pending()...), nil
}

// readNotices reads the subscription's connection until it fails: on a
// plain socket by draining it whenever it is readable (as NearState does
// between), otherwise by reading it here.
func (l *link) readNotices(nc net.Conn, rc syscall.RawConn) error {
	s := &l.sub
	if rc != nil {
		var failed error
		err := rc.Read(func(fd uintptr) bool {
			l.smu.Lock()
			defer l.smu.Unlock()
			if !s.live || s.nc != nc {
				failed = net.ErrClosed
				return true
			}
			l.drain(int(fd))
			failed = s.failed
			return failed != nil
		})
		if failed != nil {
			return failed
		}
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		l.smu.Lock()
		if !s.live || s.nc != nc {
			l.smu.Unlock()
			return net.ErrClosed
		}
		s.buf = append(s.buf, buf[:n]...)
		l.decode()
		failed := s.failed
		l.smu.Unlock()
		if failed != nil {
			return failed
		}
		if err != nil {
			return err
		}
	}
}

// drain reads what the subscription's socket holds, without waiting, and
// applies it (l.smu held); a failure is left in s.failed.
func (l *link) drain(fd int) {
	s := &l.sub
	for s.failed == nil {
		n, err := syscall.Read(fd, s.tmp[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err != nil:
			s.failed = err
			return
		case n == 0:
			s.failed = io.EOF
			return
		}
		s.buf = append(s.buf, s.tmp[:n]...)
		l.decode()
		if n < len(s.tmp) {
			return
		}
	}
}

// decode applies the whole notices in s.buf (l.smu held). Anything but a
// notice of a session id, numbered one more than the last, is a corrupt
// stream: s.failed says so.
func (l *link) decode() {
	s := &l.sub
	used := 0
	for s.failed == nil {
		m, n, err := s.asm.Decode(s.buf[used:])
		used += n
		if err != nil {
			s.failed = err
			break
		}
		if m == nil {
			break
		}
		switch {
		case m.Op != proto.OpNotice:
			s.failed = errNotify(fmt.Sprintf("a %v message on the subscription", m.Op))
		case m.UID != s.uid+1:
			s.failed = errNotify(fmt.Sprintf("notice %d after notice %d", m.UID, s.uid))
		case len(m.Payload) < 1 || len(m.Payload) > proto.MaxIDLen:
			s.failed = errNotify(fmt.Sprintf("a notice of %d bytes", len(m.Payload)))
		default:
			s.uid = m.UID
			l.u.sink.Invalidate(m.Payload)
		}
	}
	s.buf = s.buf[:copy(s.buf, s.buf[used:])]
	if cap(s.buf) > 64<<10 && len(s.buf) < 4<<10 {
		s.buf = append([]byte(nil), s.buf...)
	}
}

// endSub ends the live subscription after err (l.smu held): the sink
// forgets everything before anyone can see the subscription gone.
func (l *link) endSub(err error) {
	s := &l.sub
	if !s.live {
		return
	}
	s.live = false
	// Closed from another goroutine: a Close waits for the reader's
	// callback, which may be waiting for l.smu.
	go s.nc.Close()
	s.nc, s.rc = nil, nil
	s.buf = s.buf[:0]
	l.u.sink.Flush()
	closing := false
	select {
	case <-l.u.stop:
		closing = true
	default:
	}
	switch {
	case closing:
	case errors.Is(err, io.EOF):
		// What a server does at a re-exec or shutdown: no warning.
		l.u.log.Printf("Info, the server '%s' closed the subscription to its removals; the near cache is off until it is back", l.srv.Name)
	default:
		l.u.log.Printf("Warning, lost the subscription to the removals of the server '%s': %v; the near cache is off until it is back", l.srv.Name, err)
	}
}

// closeSub ends the subscription when the Upstream closes.
func (l *link) closeSub() {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.endSub(net.ErrClosed)
}
