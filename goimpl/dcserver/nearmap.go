// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
	"github.com/distcache-go/distcache/goimpl/store"
)

// A Server with Options.NearMap shares its sessions with the programs on
// its unix socket (goimpl/nearmap, as dc_client -nearmap shares its near
// cache): every session its store adds goes into the map, every id a
// REMOVE or TAKE names leaves it before the request is answered, and the
// map's lease is renewed every quarter of a lease while the Server runs.
// Only for a store no other process changes (the in-memory cache): a
// session the cache drops to make room stays in the map until its
// lifetime ends, as if the cache had had the room.

// mapStore mirrors a store's changes into the map. Each change of an id
// and its mirroring are one step under the id's stripe lock, so that the
// map sees the changes of one id in the store's order (an ADD whose
// mirroring came after a REMOVE answered meanwhile would put back a
// session the store no longer has).
type mapStore struct {
	wrapped
	m       *nearmap.Map
	stripes *[256]sync.Mutex
}

func newMapStore(st store.Store, m *nearmap.Map) mapStore {
	return mapStore{wrapped{st}, m, new([256]sync.Mutex)}
}

func (s mapStore) lock(id []byte) *sync.Mutex {
	mu := &s.stripes[nearmap.Hash(id)%uint64(len(s.stripes))]
	mu.Lock()
	return mu
}

func (s mapStore) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	mu := s.lock(id)
	defer mu.Unlock()
	at := time.Now()
	err := s.Store.Add(ctx, id, data, ttl)
	if err == nil && ttl > time.Millisecond {
		// ends no later than the store's copy: counted from before it
		s.m.Put(id, data, nearmap.Mono(at)+int64(ttl-time.Millisecond))
	} else {
		// whatever the map held for id (a copy the cache dropped to
		// make room) is not the store's
		s.m.Remove(id)
	}
	return err
}

// Get puts a hit the map does not hold into it: a session that reached
// the cache without passing through it (the predecessor's, at a re-exec
// or handover; one restored from a snapshot; one that lost its slot to
// another) is read without a round trip from its next GET on.
func (s mapStore) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	d, _, err := s.GetLife(ctx, id, dst)
	return d, err
}

// GetLife is Get with the entry's remaining lifetime (store.LifeGetter).
func (s mapStore) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	if s.m.Holds(id) {
		return store.GetLife(ctx, s.Store, id, dst)
	}
	mu := s.lock(id)
	defer mu.Unlock()
	at := time.Now()
	d, left, err := store.GetLife(ctx, s.Store, id, dst)
	if err == nil && left > time.Millisecond {
		// ends no later than the store's copy (left is rounded down)
		s.m.Put(id, d[len(dst):], nearmap.Mono(at)+int64(left-time.Millisecond))
	}
	return d, left, err
}

func (s mapStore) Remove(ctx context.Context, id []byte) error {
	mu := s.lock(id)
	defer mu.Unlock()
	err := s.Store.Remove(ctx, id)
	s.m.Remove(id)
	return err
}

func (s mapStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	mu := s.lock(id)
	defer mu.Unlock()
	d, err := s.Store.Take(ctx, id, dst)
	s.m.Remove(id)
	return d, err
}

// shareMap makes the map readable and renews its lease until stopMap.
func (s *Server) shareMap() {
	s.nmStop, s.nmDone = make(chan struct{}), make(chan struct{})
	s.nm.Reset(true)
	s.nm.Renew(nearmap.Now() + int64(nearmap.Lease))
	skew := wallSkew()
	go nearmap.Renewals(s.nmStop, s.nmDone, func() {
		// The cache ends sessions on the wall clock, the map on the
		// monotonic one: a wall clock set forward ends the cache's
		// copies early, so the map forgets its own.
		if d := wallSkew(); d-skew > time.Second || skew-d > time.Second {
			s.nm.Flush()
			skew = d
		}
		s.nm.Renew(nearmap.Now() + int64(nearmap.Lease))
	})
}

// wallSkew is the wall clock less the monotonic one.
func wallSkew() time.Duration {
	t := time.Now()
	return time.Duration(t.UnixNano() - nearmap.Mono(t))
}

// stopMap leaves the map unread from now on (a shutdown, or a handover:
// the successor answers the REMOVEs from then on).
func (s *Server) stopMap() {
	if s.nm == nil {
		return
	}
	s.nmOnce.Do(func() {
		close(s.nmStop)
		<-s.nmDone
		s.nm.Reset(false)
	})
}

// answerMap answers a GET of proto.NearMapID, the first request of a
// connection a loop serves on a unix socket, with the map's read-only
// descriptor while the map is read; the answer waits in c.out as any
// other when it cannot go at once (then without the descriptor, as a
// miss, if nothing of it went). False when the connection ended.
func (c *conn) answerMap(m *proto.Message) bool {
	s := c.s
	out, _ := proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte(nearmap.ProbeAnswer)})
	c.out = out
	// Only from a loop, whose write never waits: a connection a
	// goroutine serves (its request came in pieces, or TLS) gets a miss.
	n, err := 0, error(syscall.EBADF)
	if c.loop != nil && c.loop.unix && s.nm.Live() {
		n, err = s.nm.SendTo(c.fd, out)
	}
	s.ops.Add(1)
	s.m.BytesOut(n)
	switch {
	case n == len(out):
		c.out = c.out[:0]
	case n > 0:
		c.out = c.out[:copy(c.out, out[n:])] // the rest, as a write that would wait leaves it
	case err == syscall.EAGAIN || err == syscall.EBADF || err == rawio.ErrWouldBlock:
		c.out, _ = proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte{proto.ResultNotOK}})
	default:
		c.report(err)
		c.end(metrics.WriteCloseReason(err), false)
		return false
	}
	c.account()
	return true
}
