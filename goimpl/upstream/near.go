// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Near is dc_client's near cache: a store.Store in front of the store
// that reaches the servers (the Upstream, or a sealing wrapper of it),
// which answers GETs and HAVEs of the sessions this process added or
// read once without asking the server, while a subscription to the
// server's removal notices (subscribe.go) is live on the server requests
// go to.
//
// Exactness. An entry is kept only from an ADD the server stored (which
// also drops any copy of its id: the server had none), or from a GET
// the server answered with the session and its remaining lifetime
// (GETLIFE, life.go), sent while the subscription was live and
// answered with no notice, lost subscription or change of server or
// connection in between (otherwise the answer may be older than a
// removal whose notice has already come). Its lifetime is the ADD's, or
// what the server said was left, counted from when the request was sent,
// less a millisecond (the server counts from its receipt, truncated to
// the millisecond), so it never outlives the server's copy. A GET
// answered by a server that did not announce GETLIFE keeps nothing. A
// notice drops its id; REMOVE and TAKE drop the local copy before they go
// to the server (always). When the subscription ends, when requests go
// to another server, or over a new connection, everything is forgotten,
// and nothing is answered from here until a subscription is live again.
// A session the server drops to make room sends no notice: this process
// may answer it until its lifetime ends, as if the server had had the
// room (the server's bound is a capacity, not a promise to forget).
//
// The entries are kept in an in-memory cache (goimpl/cache) bounded by
// count and by bytes (NearBytesPerSession per session of the count), on a
// monotonic clock.
type Near struct {
	next store.Store
	u    *Upstream
	max  int

	mu  sync.Mutex
	cur NearState
	c   *cache.Cache
	// epoch counts notices, removals and flushes: an ADD's answer fills
	// the cache only when it has not moved since the ADD was sent.
	epoch atomic.Uint64

	hits, misses, flushes atomic.Uint64

	// shm, when set (Share), is kept as c is: every entry c gets, every
	// id c drops, every flush; its lease renewed while the subscription
	// is live, until stop closes.
	shm      *nearmap.Map
	stop     chan struct{}
	stopped  chan struct{} // closed when the renewals have ended
	stopOnce sync.Once
	// flushGen counts flushes (n.mu held): a renewal whose state was
	// read before a flush does not renew.
	flushGen uint64
}

// NearStats are a Near's counters.
type NearStats = metrics.NearStats

// nearEpoch and nearClock are the near caches' monotonic clock.
var nearEpoch = time.Now()

func nearClock() time.Time { return nearEpoch.Add(time.Since(nearEpoch)) }

// NewNear puts a near cache of up to max sessions in front of next, kept
// exact by u's subscriptions; it calls u.SetNear.
func NewNear(next store.Store, u *Upstream, max int) *Near {
	n := &Near{next: next, u: u, max: max}
	n.c = n.newCache()
	u.SetNear(n)
	return n
}

// NearBytesPerSession is what a near cache may hold per session of its
// bound, on average (with the cache's accounting, overheads included): a
// TLS session takes a few hundred bytes to a few KiB, and a local client
// that adds sessions of 32 KiB must not make dc_client hold its count
// bound of them (10 000 by default: 330 MB), only 4 KiB times it (40 MB).
const NearBytesPerSession = 4 << 10

func (n *Near) newCache() *cache.Cache {
	return cache.New(cache.Config{MaxSessions: n.max, MaxBytes: int64(n.max) * NearBytesPerSession, Now: nearClock})
}

// Share has n keep m, a map its local clients read (goimpl/nearmap), as
// it keeps its own cache: each entry it keeps goes into m too, each id it
// drops and each flush go from m, and m's lease is renewed every quarter
// of a lease while the subscription is live (which also reads the notices
// that have come, as a lookup does). Call it once, before requests come;
// Close stops reading m and the renewals.
func (n *Near) Share(m *nearmap.Map) {
	n.shm, n.stop, n.stopped = m, make(chan struct{}), make(chan struct{})
	go nearmap.Renewals(n.stop, n.stopped, n.renew)
}

// StopSharing leaves the shared map unread from now on and stops renewing
// it (a process handing its clients over to a successor, whose REMOVEs
// this one no longer sees); the near cache goes on.
func (n *Near) StopSharing() {
	if n.stop == nil {
		return
	}
	n.stopOnce.Do(func() { close(n.stop) })
	<-n.stopped
	n.mu.Lock()
	n.shm.Reset(false)
	n.shm = nil
	n.mu.Unlock()
}

// renew vouches for the map for a lease from now if the subscription is
// live and unchanged; else the map is flushed and left unread.
func (n *Near) renew() {
	n.mu.Lock()
	fg := n.flushGen
	n.mu.Unlock()
	at := nearClock()
	st := n.u.NearState()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.flushGen != fg {
		return // flushed meanwhile: st may be older than the flush
	}
	n.current(st)
	if st.Live() {
		n.shm.Renew(nearmap.Mono(at) + int64(nearmap.Lease))
	}
}

// Stats returns the counters.
func (n *Near) Stats() NearStats {
	n.mu.Lock()
	c := n.c
	n.mu.Unlock()
	return NearStats{Hits: n.hits.Load(), Misses: n.misses.Load(), Flushes: n.flushes.Load(),
		Sessions: c.NumItems(nearClock()), Bytes: c.Stats().Bytes}
}

// Invalidate implements NearSink.
func (n *Near) Invalidate(id []byte) {
	n.epoch.Add(1)
	n.mu.Lock()
	n.c.Remove(nearClock(), id)
	n.shm.Remove(id)
	n.mu.Unlock()
}

// Flush implements NearSink.
func (n *Near) Flush() {
	n.epoch.Add(1)
	n.mu.Lock()
	n.flushLocked(NearState{})
	n.mu.Unlock()
}

// flushLocked forgets everything and makes st current (n.mu held).
func (n *Near) flushLocked(st NearState) {
	if n.c.Stats().Items > 0 {
		n.c = n.newCache()
	}
	if n.cur.Live() {
		n.flushes.Add(1)
	}
	n.cur = st
	n.flushGen++
	n.shm.Reset(st.Live())
}

// current makes st current, forgetting what was kept under another
// state (n.mu held).
func (n *Near) current(st NearState) {
	if st != n.cur {
		n.epoch.Add(1)
		n.flushLocked(st)
	}
}

// lookup answers a GET (dst not nil: the data appended) or a HAVE from
// the near cache under st, when it holds id.
func (n *Near) lookup(st NearState, op proto.Op, id, dst []byte) ([]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.current(st)
	now := nearClock()
	if op == proto.OpHave {
		return dst, n.c.Have(now, id)
	}
	d, err := n.c.Store().Get(context.Background(), id, dst)
	return d, err == nil
}

// counted counts a lookup's outcome.
func (n *Near) counted(hit bool) bool {
	if hit {
		n.hits.Add(1)
	} else {
		n.misses.Add(1)
	}
	return hit
}

// fill is told of an ADD the server stored, or of a GETLIFE it
// answered with data and the lifetime ttl left, sent under st at epoch
// ep and time sent. A copy here is not the server's data any more (after
// an ADD the server had none: it dropped it to make room): it goes. The
// data is kept when nothing has moved since the request was sent.
func (n *Near) fill(st NearState, ep uint64, sent time.Time, id, data []byte, ttl time.Duration) {
	keep := st.Live() && n.u.NearState() == st && n.epoch.Load() == ep
	now := nearClock()
	left := ttl - now.Sub(sent) - time.Millisecond
	n.mu.Lock()
	defer n.mu.Unlock()
	n.c.Remove(now, id)
	n.shm.Remove(id)
	if !keep || left <= 0 || n.epoch.Load() != ep {
		return
	}
	n.current(st)
	if n.c.Store().Add(context.Background(), id, data, left) == nil {
		n.shm.Put(id, data, nearmap.Mono(now)+int64(left))
	}
}

// drop forgets id before a REMOVE or TAKE of it goes to the server: the
// answers of ADDs in flight then fill nothing.
func (n *Near) drop(id []byte) {
	n.epoch.Add(1)
	n.mu.Lock()
	n.c.Remove(nearClock(), id)
	n.shm.Remove(id)
	n.mu.Unlock()
}

// Add implements store.Store.
func (n *Near) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	st := n.u.NearState()
	ep, sent := n.epoch.Load(), nearClock()
	err := n.next.Add(ctx, id, data, ttl)
	if err == nil {
		n.fill(st, ep, sent, id, data, ttl)
	}
	return err
}

// Get implements store.Store: what the near cache does not hold is read
// from the server with its remaining lifetime (GETLIFE), and kept.
func (n *Near) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	st := n.u.NearState()
	if !st.Live() {
		return n.next.Get(ctx, id, dst)
	}
	if d, ok := n.lookup(st, proto.OpGet, id, dst); n.counted(ok) {
		return d, nil
	}
	ep, sent := n.epoch.Load(), nearClock()
	d, left, err := store.GetLife(ctx, n.next, id, dst)
	switch {
	case errors.Is(err, store.ErrUnsupported): // too large to come with its lifetime
		return n.next.Get(ctx, id, dst)
	case err == nil && left > 0:
		n.fill(st, ep, sent, id, d[len(dst):], left)
	}
	return d, err
}

// Have implements store.Store.
func (n *Near) Have(ctx context.Context, id []byte) error {
	if st := n.u.NearState(); st.Live() {
		if _, ok := n.lookup(st, proto.OpHave, id, nil); n.counted(ok) {
			return nil
		}
	}
	return n.next.Have(ctx, id)
}

// Remove implements store.Store.
func (n *Near) Remove(ctx context.Context, id []byte) error {
	n.drop(id)
	return n.next.Remove(ctx, id)
}

// Take implements store.Store.
func (n *Near) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	n.drop(id)
	return n.next.Take(ctx, id, dst)
}

// Close implements store.Store; a shared map is left unread from then on.
func (n *Near) Close() error {
	n.StopSharing()
	return n.next.Close()
}

// Unwrap is the store behind the near cache.
func (n *Near) Unwrap() store.Store { return n.next }

// nearFill is an ADD started through the near cache: what it keeps when
// the server stores it, and the Completion it replaced.
type nearFill struct {
	n        *Near
	st       NearState
	ep       uint64
	sent     time.Time
	id, data []byte
	ttl      time.Duration
	next     store.Completion
}

var fillPool = sync.Pool{New: func() any { return new(nearFill) }}

// Complete fills the near cache when the ADD was stored, and passes the
// call on.
func (f *nearFill) Complete(c *store.Call) {
	if c.Err == nil {
		f.n.fill(f.st, f.ep, f.sent, f.id, f.data, f.ttl)
	}
	next := f.next
	f.n, f.next, f.st = nil, nil, NearState{}
	f.id, f.data = f.id[:0], f.data[:0]
	fillPool.Put(f)
	c.Done = next
	next.Complete(c)
}

// nearGet is a GET the near cache could not answer, started behind it
// as a GETLIFE: what it keeps when the server answers, and the
// Completion it replaced.
type nearGet struct {
	n    *Near
	a    store.Async
	st   NearState
	ep   uint64
	sent time.Time
	id   []byte
	next store.Completion
}

var getPool = sync.Pool{New: func() any { return new(nearGet) }}

// startGet starts c, a GET under st, as a GETLIFE on a; false, c as it
// was, when a does not start it.
func (n *Near) startGet(a store.Async, c *store.Call, st NearState) bool {
	g := getPool.Get().(*nearGet)
	g.n, g.a, g.st, g.ep, g.sent, g.next = n, a, st, n.epoch.Load(), nearClock(), c.Done
	g.id = append(g.id[:0], c.ID...)
	c.Op, c.Done = proto.OpGetLife, g
	if a.Start(c) {
		return true
	}
	c.Op, c.Done = proto.OpGet, g.next
	g.release()
	return false
}

func (g *nearGet) release() {
	g.n, g.a, g.next, g.st = nil, nil, nil, NearState{}
	g.id = g.id[:0]
	getPool.Put(g)
}

// Complete keeps what the server answered and passes the call on, a GET
// again; a session too large to come with its lifetime is asked again
// as a GET.
func (g *nearGet) Complete(c *store.Call) {
	next, a := g.next, g.a
	c.Op, c.Done = proto.OpGet, next
	left := c.Left
	c.Left = 0
	if errors.Is(c.Err, store.ErrUnsupported) {
		// The caller's id is not to be read once Start returned.
		c.ID = append([]byte(nil), g.id...)
		g.release()
		c.Res, c.Err = nil, nil
		if a.Start(c) {
			return
		}
		c.Res, c.Err = c.Dst, store.ErrUnavailable
		next.Complete(c)
		return
	}
	if c.Err == nil && left > 0 {
		g.n.fill(g.st, g.ep, g.sent, g.id, c.Res[len(c.Dst):], left)
	}
	g.release()
	next.Complete(c)
}

// Start implements store.Async when the store behind does: GETs and
// HAVEs the near cache holds complete at once, the rest is started
// behind it (the GETs as GETLIFE, whose answers are kept).
func (n *Near) Start(c *store.Call) bool {
	a, ok := n.next.(store.Async)
	if !ok {
		return false
	}
	switch c.Op {
	case proto.OpGet, proto.OpHave:
		if !validID(c.ID) {
			break
		}
		if st := n.u.NearState(); st.Live() {
			dst := c.Dst
			if c.Op == proto.OpHave {
				dst = nil
			}
			if d, ok := n.lookup(st, c.Op, c.ID, dst); n.counted(ok) {
				c.Res, c.Err = d, nil
				if c.Op == proto.OpHave {
					c.Res = c.Dst
				}
				c.Done.Complete(c)
				return true
			}
			if c.Op == proto.OpGet && n.startGet(a, c, st) {
				return true
			}
		}
	case proto.OpRemove, proto.OpTake:
		n.drop(c.ID)
	case proto.OpAdd:
		st := n.u.NearState()
		f := fillPool.Get().(*nearFill)
		f.n, f.st, f.ep, f.sent, f.ttl, f.next = n, st, n.epoch.Load(), nearClock(), c.TTL, c.Done
		f.id = append(f.id[:0], c.ID...)
		if st.Live() {
			f.data = append(f.data[:0], c.Data...)
		}
		c.Done = f
		if a.Start(c) {
			return true
		}
		c.Done = f.next
		f.n, f.next = nil, nil
		fillPool.Put(f)
		return false
	}
	return a.Start(c)
}
