// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"context"
	"net"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/metrics"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
)

// A Server with Options.NearMap shares its sessions with the programs on
// its unix socket (goimpl/nearmap, as dc_client -nearmap shares its near
// cache): every session its store adds goes into the map, every id a
// REMOVE or TAKE names leaves it before the request is answered, and the
// map's lease is renewed every quarter of a lease while the Server runs.
// Only for a store no other process changes (the in-memory cache): a
// session the cache drops to make room stays in the map until its
// lifetime ends, as if the cache had had the room.

// mapStore mirrors a store's changes into the map.
type mapStore struct {
	wrapped
	m *nearmap.Map
}

func (s mapStore) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	at := time.Now()
	err := s.Store.Add(ctx, id, data, ttl)
	if err == nil && ttl > time.Millisecond {
		// ends no later than the store's copy: counted from before it
		s.m.Put(id, data, nearmap.Mono(at)+int64(ttl-time.Millisecond))
	}
	return err
}

func (s mapStore) Remove(ctx context.Context, id []byte) error {
	err := s.Store.Remove(ctx, id)
	s.m.Remove(id)
	return err
}

func (s mapStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	d, err := s.Store.Take(ctx, id, dst)
	s.m.Remove(id)
	return d, err
}

// shareMap makes the map readable and renews its lease until stopMap.
func (s *Server) shareMap() {
	s.nmStop, s.nmDone = make(chan struct{}), make(chan struct{})
	s.nm.Reset(true)
	s.nm.Renew(nearmap.Now() + int64(nearmap.Lease))
	go nearmap.Renewals(s.nmStop, s.nmDone, func() { s.nm.Renew(nearmap.Now() + int64(nearmap.Lease)) })
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
// connection on a unix socket, with the map's read-only descriptor; the
// answer waits in c.out as any other when it cannot go at once (then
// without the descriptor, as a miss would be, if nothing of it went).
// False when the connection ended.
func (c *conn) answerMap(m *proto.Message) bool {
	s := c.s
	out, _ := proto.AppendMessage(c.out[:0], &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte(nearmap.ProbeAnswer)})
	c.out = out
	var n int
	var err error
	switch uc, _ := c.nc.(*net.UnixConn); {
	case c.loop != nil && c.loop.unix:
		n, err = s.nm.SendTo(c.fd, out)
	case uc != nil && !c.handingOff():
		var fd int
		if fd, err = s.nm.DupReadFD(); err == nil {
			n, _, err = uc.WriteMsgUnix(out, syscall.UnixRights(fd), nil)
			syscall.Close(fd)
		}
	default:
		err = syscall.EBADF // not a unix socket: no descriptor to hand
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
