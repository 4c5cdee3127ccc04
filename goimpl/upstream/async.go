// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Poll has p's event loop read the server connections that are plain
// sockets (the current ones, as soon as no one else is reading them, and
// every new one), so that the loop that starts requests (Start) also
// reads their answers; nil stops attaching new connections (the loop
// says Unpolled of the ones it reads as it ends).
func (u *Upstream) Poll(p evloop.Poller) {
	u.pmu.Lock()
	u.pl = p
	u.pmu.Unlock()
	if p == nil {
		return
	}
	for _, l := range u.links {
		l.pollNow()
	}
}

// addBufs hold started ADDs' payloads while they are sent.
var addBufs = sync.Pool{New: func() any { return new([]byte) }}

// Polled reports whether every server connection is read by the Poll
// loop (true with none connected).
func (u *Upstream) Polled() bool {
	for _, l := range u.links {
		l.mu.Lock()
		ok := l.nc == nil || l.polled
		l.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (u *Upstream) poller() evloop.Poller {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	return u.pl
}

// Start implements store.Async: the request is written to the server
// without waiting for its answer, which goes to c.Done from whoever reads
// it (the poller's loop, readLoop, or the watchdog failing it), and the
// results are those of the blocking methods. A request that finds no
// server completes at once; one that finds every Inflight slot taken
// waits for one in a goroutine of its own.
func (u *Upstream) Start(sc *store.Call) bool {
	var err error
	switch sc.Op {
	case proto.OpAdd:
		err = check(sc.ID, sc.Data, sc.TTL)
	case proto.OpGet, proto.OpGetLife, proto.OpRemove, proto.OpHave:
		if !validID(sc.ID) {
			err = store.ErrNotFound
		}
	default:
		return false
	}
	l := u.pick()
	if err == nil && l == nil {
		err = ErrNoServer
	}
	if err != nil {
		sc.Res, sc.Err = sc.Dst, err
		sc.Done.Complete(sc)
		return true
	}
	c := callPool.Get().(*call)
	c.op, c.dst = sc.Op, sc.Dst
	if sc.Op != proto.OpGet && sc.Op != proto.OpGetLife {
		c.dst = c.rbuf[:0]
	}
	payload := sc.ID
	if sc.Op == proto.OpAdd {
		// Not the call's pbuf: once sent, the call may complete and be
		// reused before send returns.
		b := addBufs.Get().(*[]byte)
		*b = proto.AppendAddRequest((*b)[:0], uint32(sc.TTL/time.Millisecond), sc.ID, sc.Data)
		defer addBufs.Put(b)
		payload = *b
	}
	select {
	case l.slots <- struct{}{}:
	default:
		// Every slot taken: wait for one where waiting is allowed.
		p := append([]byte(nil), payload...)
		go func() {
			res, err := l.roundTrip(context.Background(), c, sc.Op, p, c.dst)
			c.sc = sc
			c.finish(res, err)
		}()
		return true
	}
	c.sc = sc
	now := time.Now()
	var t time.Duration
	if u.timeout > 0 {
		t = l.lat.Timeout(now)
	}
	deadline := now.Add(10 * time.Second)
	if t > 0 {
		deadline = now.Add(max(10*t, time.Second))
	}
	if _, _, _, ok := l.send(c, sc.Op, payload, true, stateUp, t, deadline, false); !ok {
		<-l.slots
		c.finish(c.dst, ErrNoServer)
	}
	return true
}
