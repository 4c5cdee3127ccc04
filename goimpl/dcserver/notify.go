// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Removal notices (proto.FeatureNotify, doc/EXTENSIONS.md): a client that
// keeps sessions near its own clients (dc_client's near cache) subscribes
// on a connection of its own, and from then on that connection carries an
// OpNotice for every session removed or taken through this server, by any
// client (distcache or sessiond). The notice is queued, and on a plain
// socket written when the socket has room, before the request that
// removed the session is answered: a remover that has its answer knows
// that every subscriber has the notice on its way. A subscriber whose
// notices pile up past Options.NoticeBacklog, or whose notices take the
// connections past Options.ConnMemory (the notices waiting count with what
// the other connections hold), is closed, which its client takes for the
// loss of its subscription (it forgets what it kept): a slow subscriber
// costs the server neither a wait nor memory. Subscribers leave the
// connection limits (an idle one is not a victim for a newcomer), so they
// have a count of their own: at most Options.MaxConns.

// DefaultNoticeBacklog is Options.NoticeBacklog's default: the notice
// bytes a subscriber may have waiting to be written (about 13 000 notices
// of 64-byte ids).
const DefaultNoticeBacklog = 1 << 20

// hub is the Server's set of subscribers.
type hub struct {
	s       *Server
	backlog int
	mu      sync.Mutex // guards subs' updates and closed
	subs    atomic.Pointer[[]*subscriber]
	closed  bool
}

// subscriber is one subscribed connection: a goroutine writes what the
// notices' callers could not write at once, another reads the connection
// to notice its end (a client that sends anything more is closed).
type subscriber struct {
	h       *hub
	nc      net.Conn
	rc      syscall.RawConn // nil when writes go through nc only (TLS)
	peer    string
	mu      sync.Mutex
	out     []byte // notice bytes not written yet
	writing bool   // the writer goroutine has out
	closed  bool
	charged int64 // bytes of out and of the writer's batch counted in Server.connMem
	uid     uint32
	wake    chan struct{} // cap 1
	done    chan struct{} // closed with the subscriber
}

// publish queues a notice of id to every subscriber.
func (h *hub) publish(id []byte) {
	p := h.subs.Load()
	if p == nil {
		return
	}
	for _, sb := range *p {
		sb.notice(id)
	}
}

// add makes nc a subscriber: it is registered before owed (the answers it
// is owed, the subscription's last) is written, so that every removal
// after its client has the answer sends it a notice.
func (h *hub) add(nc net.Conn, owed []byte) {
	sb := &subscriber{h: h, nc: nc, peer: peer(nc), out: owed, writing: true,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if _, tls := nc.(interface{ Pending() bool }); !tls {
		if sc, ok := nc.(syscall.Conn); ok {
			sb.rc, _ = sc.SyscallConn()
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		nc.Close()
		h.s.m.ConnClosed(metrics.CloseShutdown)
		return
	}
	if max := h.s.o.MaxConns; max > 0 && h.count() >= max {
		h.mu.Unlock()
		nc.Close()
		h.s.m.ConnClosed(metrics.CloseError)
		h.s.log.Printf("Warning, closing connection from %s: already %d subscribers (-maxconns)", sb.peer, max)
		return
	}
	var next []*subscriber
	if p := h.subs.Load(); p != nil {
		next = append(next, *p...)
	}
	next = append(next, sb)
	h.subs.Store(&next)
	// Written at once when the socket takes it, so that the writer does
	// not hold the first notices back.
	sb.mu.Lock()
	if sb.rc != nil {
		n := sb.writeNow(sb.out)
		sb.out = sb.out[:copy(sb.out, sb.out[n:])]
	}
	sb.charged = int64(len(sb.out))
	h.s.connMem.Add(sb.charged)
	sb.writing = len(sb.out) > 0
	if sb.writing {
		sb.wake <- struct{}{}
	}
	sb.mu.Unlock()
	h.mu.Unlock()
	go sb.writeLoop()
	go sb.readLoop()
}

// remove forgets sb.
func (h *hub) remove(sb *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.subs.Load()
	if p == nil {
		return
	}
	next := make([]*subscriber, 0, len(*p))
	for _, x := range *p {
		if x != sb {
			next = append(next, x)
		}
	}
	h.subs.Store(&next)
}

// close closes every subscriber, and any that comes later: at shutdown,
// and before a handover (a successor does not know them; their clients
// subscribe to it again).
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	p := h.subs.Load()
	h.mu.Unlock()
	if p != nil {
		for _, sb := range *p {
			sb.close(metrics.CloseShutdown, "")
		}
	}
}

// count is the number of subscribers.
func (h *hub) count() int {
	if p := h.subs.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// notice queues the notice of id, and writes it at once when nothing is
// queued before it and the socket takes it.
func (sb *subscriber) notice(id []byte) {
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return
	}
	sb.uid++
	start := len(sb.out)
	sb.out, _ = proto.AppendMessage(sb.out, &proto.Message{Response: true, UID: sb.uid, Op: proto.OpNotice, Payload: id})
	if !sb.writing && start == 0 && sb.rc != nil {
		n := sb.writeNow(sb.out)
		sb.out = sb.out[:copy(sb.out, sb.out[n:])]
	}
	// Nothing queued before it was written (start == 0), so what is left
	// of out beyond start is what this notice adds.
	d := int64(len(sb.out) - start)
	sb.charged += d
	s := sb.h.s
	switch {
	case len(sb.out) > sb.h.backlog:
		s.connMem.Add(d)
		sb.mu.Unlock()
		sb.close(metrics.CloseResponseTimeout, "its notices are not taken")
		return
	case d > 0 && s.connMem.Add(d) > s.connBudget:
		sb.mu.Unlock()
		sb.close(metrics.CloseResponseTimeout, fmt.Sprintf("its notices are not taken and connections hold over %d bytes", s.connBudget))
		return
	case len(sb.out) > 0 && !sb.writing:
		sb.writing = true
		sb.wake <- struct{}{}
	}
	sb.mu.Unlock()
}

// writeNow writes what the socket takes of b without waiting.
func (sb *subscriber) writeNow(b []byte) int {
	n := 0
	sb.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, err := syscall.Write(int(fd), b[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || k <= 0 {
				break
			}
			n += k
		}
		return true // never wait here
	})
	return n
}

// writeLoop writes the queued notices, each batch within the frame
// timeout.
func (sb *subscriber) writeLoop() {
	var spare []byte
	for {
		select {
		case <-sb.wake:
		case <-sb.done:
			return
		}
		for {
			sb.mu.Lock()
			if sb.closed || len(sb.out) == 0 {
				sb.writing = false
				sb.mu.Unlock()
				break
			}
			b := sb.out
			sb.out = spare[:0]
			sb.mu.Unlock()
			sb.nc.SetWriteDeadline(time.Now().Add(sb.h.s.o.FrameTimeout))
			_, err := sb.nc.Write(b)
			if err != nil {
				why, reason := metrics.WriteCloseReason(err), ""
				if isTimeout(err) {
					reason = "notices not taken: " + err.Error()
				} // else the subscriber has gone (its client closed or reset it)
				sb.close(why, reason)
				return
			}
			sb.mu.Lock()
			if !sb.closed { // close returned the whole charge
				sb.charged -= int64(len(b))
				sb.h.s.connMem.Add(-int64(len(b)))
			}
			sb.mu.Unlock()
			spare = b[:0]
		}
	}
}

// readLoop waits for the connection's end: a subscriber sends nothing
// after its subscription, so any byte closes it.
func (sb *subscriber) readLoop() {
	var b [1]byte
	n, err := sb.nc.Read(b[:])
	switch {
	case n > 0:
		sb.close(metrics.CloseCorrupt, "a subscribed connection sent a request")
	case err != nil:
		sb.close(metrics.CloseClient, "")
	}
}

// close ends the subscription (why for the metrics; a reason to log, or
// "").
func (sb *subscriber) close(why metrics.CloseReason, reason string) {
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return
	}
	sb.closed = true
	sb.out = nil
	sb.h.s.connMem.Add(-sb.charged)
	sb.charged = 0
	close(sb.done)
	sb.mu.Unlock()
	sb.h.remove(sb)
	sb.nc.Close()
	sb.h.s.m.ConnClosed(why)
	if reason != "" && !sb.h.s.set.Closing() {
		sb.h.s.log.Printf("Warning, closing the subscription of %s: %s", sb.peer, reason)
	}
}

// subscribe answers req (OpSubscribe) and makes the connection a
// subscriber: it leaves the connection limits and its loop or goroutine
// (true: the conn is done with). A subscription must be the last request
// on its connection, and carries no payload: otherwise the connection is
// closed as corrupt.
func (c *conn) subscribe(req *proto.Message) bool {
	s := c.s
	if len(req.Payload) != 0 || c.rd.Buffered() != 0 || len(c.pre) != 0 {
		s.log.Printf("Warning, closing connection from %s: a subscription with a payload or followed by requests", c.peer())
		return c.endCorrupt()
	}
	c.out, _ = proto.AppendMessage(c.out, &proto.Message{Response: true, UID: req.UID, Op: req.Op, Payload: []byte{proto.ResultOK}})
	s.ops.Add(1)
	if c.loop != nil {
		if err := c.loop.toNetConn(c, "Warning, closing connection from %s: %v"); err != nil {
			c.s.m.ConnClosed(metrics.CloseError)
			c.uncharge()
			return true
		}
	}
	s.limits.leave(&c.cs)
	c.uncharge()
	nc, owed := c.nc, append([]byte(nil), c.out...)
	c.nc, c.out = nil, c.out[:0]
	nc.SetReadDeadline(time.Time{})
	s.hub.add(nc, owed)
	return true
}

// notifyStore is the Server's store when it sends notices: every Remove
// and Take (of a well-formed id, found or not) is published before it
// returns, so before its request is answered.
type notifyStore struct {
	wrapped
	h *hub
}

func (n notifyStore) Remove(ctx context.Context, id []byte) error {
	err := n.Store.Remove(ctx, id)
	if store.ValidID(id) {
		n.h.publish(id)
	}
	return err
}

func (n notifyStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	d, err := n.Store.Take(ctx, id, dst)
	if store.ValidID(id) && err != store.ErrUnsupported {
		n.h.publish(id)
	}
	return d, err
}

// wrapped is a store that passes on what its wrappers (notifyStore,
// mapStore) do not change, the wrapped store's optional interfaces too.
type wrapped struct{ store.Store }

// GetLife is the wrapped store's (store.LifeGetter).
func (w wrapped) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	return store.GetLife(ctx, w.Store, id, dst)
}

// NeverBlocks is the wrapped store's (store.NeverBlocks).
func (w wrapped) NeverBlocks() bool { return store.NeverBlocks(w.Store) }

// Unwrap is the wrapped store.
func (w wrapped) Unwrap() store.Store { return w.Store }
