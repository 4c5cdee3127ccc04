// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"fmt"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// GETLIFE (proto.OpGetLife, doc/EXTENSIONS.md) is GET with the session's
// remaining lifetime: the near cache sends it for the GETs it cannot
// answer, and keeps what it reads. It goes only on a connection whose
// server announced it; on any other the request is sent as a GET (send
// decides, under the lock that picks the connection), and its lifetime is
// 0, unknown.

// errTooLarge: the server could not fit the session and its lifetime in
// one answer; the caller asks GET.
var errTooLarge = fmt.Errorf("upstream: the session is too large for GETLIFE: %w", store.ErrUnsupported)

// announced reports whether the server on the current connection
// announced bit (l.mu held): known only once features asked it.
func (l *link) announced(bit uint32) bool {
	l.feat.mu.Lock()
	defer l.feat.mu.Unlock()
	return l.feat.known && l.feat.gen == l.gen && l.feat.bits&bit != 0
}

// GetLife implements store.LifeGetter: a GETLIFE where the server
// announced it, a GET with a lifetime of 0 elsewhere.
func (u *Upstream) GetLife(ctx context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	if !validID(id) {
		return dst, 0, store.ErrNotFound
	}
	c := callPool.Get().(*call)
	defer callPool.Put(c)
	res, err := u.do(ctx, c, proto.OpGetLife, id, dst)
	return lifeResult(c.op, res, dst, err)
}

// lifeResult maps the answer to a request sent as op (GETLIFE, or GET
// when it went as one), appended to dst, onto the store's results: the
// data is moved down over the lifetime that came before it.
func lifeResult(op proto.Op, res, dst []byte, err error) ([]byte, time.Duration, error) {
	if err != nil || op != proto.OpGetLife {
		d, err := getResult(res, dst, err)
		return d, 0, err
	}
	p := res[len(dst):]
	if left, data, ok := proto.ParseLife(p); ok {
		n := copy(p, data)
		return res[:len(dst)+n], left, nil
	}
	switch {
	case len(p) == 0:
		return dst, 0, errEmpty
	case len(p) == 1 && p[0] == proto.ResultNotOK:
		return dst, 0, store.ErrNotFound
	case len(p) == 1 && p[0] == proto.ResultTooLarge:
		return dst, 0, errTooLarge
	}
	return dst, 0, fmt.Errorf("upstream: the server answered GETLIFE with % x: %w", p, ErrDisconnected)
}
