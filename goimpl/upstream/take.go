// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// features is what one server announced in answer to the feature probe
// (proto.FeaturesID), for one connection: a new connection may be to
// another program (an upgrade, a 1.5 server), so it is asked again.
type features struct {
	mu    sync.Mutex
	gen   uint64 // the connection the answer came on
	known bool
	bits  uint32
}

// features returns what the server on l's current connection announced,
// probing once per connection.
func (l *link) features(ctx context.Context) (uint32, error) {
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	l.feat.mu.Lock()
	if l.feat.known && l.feat.gen == gen {
		bits := l.feat.bits
		l.feat.mu.Unlock()
		return bits, nil
	}
	l.feat.mu.Unlock()
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	res, err := l.roundTrip(ctx, c, proto.OpGet, proto.FeaturesID, c.rbuf[:0])
	c.rbuf = res[:0]
	if err != nil {
		return 0, err
	}
	bits := proto.ParseFeatures(res)
	l.feat.mu.Lock()
	l.feat.gen, l.feat.known, l.feat.bits = gen, true, bits
	l.feat.mu.Unlock()
	return bits, nil
}

// Features reports the extensions the server in use announced (0 when
// none is in use or it announced none), asking it if this connection has
// not been asked yet. A dc_client announces to its local clients what its
// server announced.
func (u *Upstream) Features() uint32 {
	l := u.pick()
	if l == nil {
		return 0
	}
	t := u.timeout
	if t <= 0 || t > time.Second {
		t = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	bits, err := l.features(ctx)
	if err != nil {
		return 0
	}
	return bits
}

// Take implements store.Store with the TAKE extension, on a server that
// announced it; on any other (a 1.5 server) it is ErrUnsupported and
// nothing is sent, since a 1.5 server would close the connection.
func (u *Upstream) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	if !validID(id) {
		return dst, store.ErrNotFound
	}
	l := u.pick()
	if l == nil {
		return dst, ErrNoServer
	}
	bits, err := l.features(ctx)
	if err != nil {
		return dst, err
	}
	if bits&proto.FeatureTake == 0 {
		return dst, fmt.Errorf("upstream: %s does not announce TAKE: %w", l.srv.Name, store.ErrUnsupported)
	}
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	res, err := l.roundTrip(ctx, c, proto.OpTake, id, dst)
	return getResult(res, dst, err)
}

// Connected reports whether a server is connected and answering.
func (u *Upstream) Connected() bool { return u.pick() != nil }
