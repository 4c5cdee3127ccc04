// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"context"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
)

// Store is a Cache as a store.Store: the same entries, on the clock of
// Config.Now. It never blocks on anything but the shard locks, so it
// ignores the context and never reports store.ErrUnavailable.
type Store struct{ c *Cache }

var _ store.Store = Store{}

// Store returns the cache's store.Store view.
func (c *Cache) Store() Store { return Store{c} }

// NeverBlocks says that the cache's calls wait for nothing but its shard
// locks (store.NeverBlocks).
func (v Store) NeverBlocks() bool { return true }

// Cache returns the cache the view is of.
func (v Store) Cache() *Cache { return v.c }

// Add implements store.Store. The ttl is counted in whole milliseconds
// (the protocol's unit), rounded down.
func (v Store) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	if err := store.Check(id, data, ttl); err != nil {
		return err
	}
	switch v.c.add(v.c.now().UnixMicro(), uint32(ttl/time.Millisecond), id, data) {
	case added:
		return nil
	case duplicate:
		return store.ErrDuplicate
	}
	return store.ErrInvalid
}

// Get implements store.Store.
func (v Store) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	d, _, err := v.get(id, dst, false)
	return d, err
}

// GetLife implements store.LifeGetter.
func (v Store) GetLife(_ context.Context, id, dst []byte) ([]byte, time.Duration, error) {
	return v.get(id, dst, false)
}

// get appends the live entry's data to dst and returns its remaining
// lifetime, and with take removes the entry under the same shard lock.
func (v Store) get(id, dst []byte, take bool) ([]byte, time.Duration, error) {
	s := v.c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	nowUS := v.c.now().UnixMicro()
	e := s.lookup(nowUS, id)
	if e == nil {
		return dst, 0, store.ErrNotFound
	}
	v.c.hit(nowUS, e)
	dst = append(dst, e.data()...)
	left := time.Duration(e.expiry-nowUS) * time.Microsecond
	if take {
		s.remove(nowUS, id)
	}
	return dst, left, nil
}

// hit tells Config.OnHit the age of the entry found at nowUS.
func (c *Cache) hit(nowUS int64, e *entry) {
	if c.onHit != nil && e.ttlMS > 0 {
		c.onHit(time.Duration(nowUS-(e.expiry-int64(e.ttlMS)*1000)) * time.Microsecond)
	}
}

// Remove implements store.Store.
func (v Store) Remove(_ context.Context, id []byte) error {
	if !v.c.Remove(v.c.now(), id) {
		return store.ErrNotFound
	}
	return nil
}

// Have implements store.Store.
func (v Store) Have(_ context.Context, id []byte) error {
	if !v.c.Have(v.c.now(), id) {
		return store.ErrNotFound
	}
	return nil
}

// Take implements store.Store: the lookup and the removal happen under one
// shard lock, so of concurrent Takes exactly one finds the entry.
func (v Store) Take(_ context.Context, id, dst []byte) ([]byte, error) {
	d, _, err := v.get(id, dst, true)
	return d, err
}

// Close implements store.Store; the entries stay (the cache may be shared).
func (v Store) Close() error { return nil }
