// SPDX-License-Identifier: Apache-2.0

package server

import (
	"context"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Handle answers one request message against a cache, exactly as the
// original server does: it returns the response payload, appended to
// out[:0]. ok is false when the original closes the connection without
// answering: an ADD shorter than 8 bytes, a response that is not a
// request, an unknown operation, or a cache that reports an entry larger
// than a message can carry. The rules are store.Handler's, the ones
// dc_server and dc_client apply; only the clock is the caller's.
func Handle(c Cache, now time.Time, req *proto.Message, out []byte) (resp []byte, ok bool) {
	cs := cacheStore{c: c, now: now}
	return cs.handle(req, out)
}

// cacheStore is a Cache on the caller's clock as a store.Store, so that
// a DC_SERVER answers through store.Handler. It is used by one thread at
// a time, as its Server is.
type cacheStore struct {
	c   Cache
	now time.Time
}

func (s *cacheStore) handle(req *proto.Message, out []byte) ([]byte, bool) {
	h := store.Handler{Store: s}
	resp, err := h.Handle(context.Background(), req, out)
	return resp, err == nil
}

func (s *cacheStore) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	if !s.c.Add(s.now, uint32(ttl/time.Millisecond), id, data) {
		return store.ErrDuplicate // answered 0x65 whatever the cache's reason
	}
	return nil
}

// Get reads into dst's spare capacity, one byte more than a message can
// carry, so that an oversized entry reaches the Handler as one (which
// closes the connection, as the original does).
func (s *cacheStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	const room = proto.MaxPayload + 1
	if cap(dst)-len(dst) < room {
		dst = append(make([]byte, 0, len(dst)+room), dst...)
	}
	buf := dst[len(dst) : len(dst)+room]
	n := s.c.Get(s.now, id, buf)
	if n == 0 {
		return dst, store.ErrNotFound
	}
	return dst[:len(dst)+min(n, room)], nil
}

func (s *cacheStore) Remove(_ context.Context, id []byte) error {
	if !s.c.Remove(s.now, id) {
		return store.ErrNotFound
	}
	return nil
}

func (s *cacheStore) Have(_ context.Context, id []byte) error {
	if !s.c.Have(s.now, id) {
		return store.ErrNotFound
	}
	return nil
}

// Take is not part of the 1.5 protocol a DC_SERVER speaks.
func (s *cacheStore) Take(_ context.Context, _, dst []byte) ([]byte, error) {
	return dst, store.ErrUnsupported
}

func (s *cacheStore) Close() error { return nil }
