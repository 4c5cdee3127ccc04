// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"errors"
	"hash/maphash"
	"sync/atomic"
	"time"
)

// Limits of the original library's default cache (DC_CACHE_MIN_SIZE,
// DC_CACHE_MAX_SIZE).
const (
	DefaultMinSize = 64
	DefaultMaxSize = 60000
)

// EntryOverhead is what Config.MaxBytes charges per entry on top of the
// memory block of its id and data (rounded up to the allocator's size
// class): its slab slot, map slot and expiry-order slot with their growth
// slack, as measured on 64-bit Go (BenchmarkMemoryPerEntry reports the
// real figure).
const EntryOverhead = 128

// maxEntrySize is the largest entry the protocol can deliver, charged.
const maxEntrySize = 32768 + EntryOverhead

// Config sizes a cache built by New. The zero value is an unbounded cache
// with 16 shards on the real clock.
type Config struct {
	// MaxSessions bounds the number of entries (0 = no count bound).
	MaxSessions int
	// MaxBytes bounds the sum over entries of the heap block holding id
	// and data (len(id)+len(data) rounded up to the allocator's size
	// class) plus EntryOverhead (0 = no byte bound): the Go heap the
	// entries hold, to within a few percent. The process needs more
	// (runtime, garbage collector headroom): dc_server gives the cache
	// 7/8 of its -maxbytes and the collector the rest.
	MaxBytes int64
	// Shards splits the cache into independently locked parts so that
	// concurrent connections rarely contend. The bounds and the eviction
	// order are the whole cache's whatever the number of shards. 0 picks
	// 16 (fewer for small bounds).
	Shards int
	// Now is the clock of the Store view (nil = the wall clock time.Now
	// reads, without its monotonic reading). The Cache
	// methods take the caller's now instead.
	Now func() time.Time
	// OnHit, when not nil, is told the age of each entry a Get or Take of
	// the Store view finds (for metrics; called under the shard's lock,
	// so it must be quick). Imported entries have no known age.
	OnHit func(age time.Duration)
}

// Stats are running counters of a Cache.
type Stats struct {
	Items       int64  // entries stored, including expired ones not yet purged
	Bytes       int64  // charged bytes of those entries (see Config.MaxBytes)
	Adds        uint64 // adds stored
	AddsRefused uint64 // adds refused (duplicate id, or larger than a shard's byte bound)
	Hits        uint64 // gets that found a live entry
	Misses      uint64 // gets that did not
	Removes     uint64 // removes that deleted an entry
	Evictions   uint64 // live entries dropped to make room
	Expirations uint64 // expired entries purged
}

// ErrSize is returned by NewDefault for a size outside 64..60000.
var ErrSize = errors.New("distcache: cache size must be between 64 and 60000 sessions")

// NewDefault is the original library's default cache contract: between 64
// and 60000 sessions (ErrSize otherwise); a duplicate live id is refused;
// when the cache is full an add first drops the max/30 entries (at least
// one) closest to expiry, ties in insertion order — live ones too, whatever
// their use. Unlike the original, lookups are hashed, expiry and eviction
// cost O(log n) instead of a scan and a memmove, and evicted entries are
// freed. The result has one shard.
func NewDefault(maxSessions int) (*Cache, error) {
	if maxSessions < DefaultMinSize || maxSessions > DefaultMaxSize {
		return nil, ErrSize
	}
	return New(Config{MaxSessions: maxSessions, Shards: 1}), nil
}

// New builds the cache of our own dc_server: no 60000-session cap, bounded
// by count and/or bytes. It is safe for concurrent use by many goroutines.
//
// The bounds are exact and the eviction order global, as in the original:
// nothing is dropped while the cache holds fewer than MaxSessions entries
// and their charged bytes fit MaxBytes. An add into a full cache drops the
// entries closest to expiry across all shards (ties: the earlier added):
// at the count bound a batch of 1/30 of it (at least one), as the original
// does; over the byte bound one at a time until the new entry fits. Adds
// that run at the same instant as the one that makes room can take the
// cache over the count bound by at most one entry each, until the next
// add. An entry larger than the whole byte bound is refused. Soonest-to-expire rather than LRU: the
// protocol's clients fix a lifetime per session and nearly all use the same
// one, so expiry order is insertion order and evicting it drops the oldest
// sessions, which is what LRU would mostly drop too, without a write on
// every read.
func New(cfg Config) *Cache {
	n := cfg.Shards
	if n <= 0 {
		n = 16
		for n > 1 && cfg.MaxBytes > 0 && cfg.MaxBytes/int64(n) < 4*maxEntrySize {
			n /= 2
		}
		for n > 1 && cfg.MaxSessions > 0 && cfg.MaxSessions/n < 64 {
			n /= 2
		}
	}
	if cfg.MaxSessions > 0 && n > cfg.MaxSessions {
		n = cfg.MaxSessions
	}
	c := &Cache{shards: make([]shard, n), now: cfg.Now, onHit: cfg.OnHit, maxItems: int64(cfg.MaxSessions), maxBytes: cfg.MaxBytes}
	if c.now == nil {
		c.now = wallClock
	}
	for i := range c.shards {
		c.shards[i].index = make(map[string]int32)
		c.shards[i].c = c
	}
	return c
}

// Cache is the sharded session cache; see New and NewDefault. Its methods
// take the caller's now (the shape of the C DC_CACHE_cb table, which
// goimpl/server's Cache interface names); Store gives the same entries as a
// store.Store on the configured clock.
type Cache struct {
	shards   []shard
	now      func() time.Time
	onHit    func(age time.Duration)
	maxItems int64 // 0: no count bound
	maxBytes int64 // 0: no byte bound
	// Whole-cache totals for the bounds, kept by the shards under their
	// locks; seq orders adds across shards (ties in the eviction order).
	items, bytes atomic.Int64
	seq          atomic.Uint64
}

// shard picks a shard by the runtime's hash of the id (what its maps use:
// a few ns where a byte-wise FNV-1a of a 32-byte id cost tens), seeded once
// per process: a peer cannot choose ids that all land on one shard, and two
// caches of one process with as many shards lay an id out alike (Export's
// order). No shard number leaves the process.
func (c *Cache) shard(id []byte) *shard { return &c.shards[c.shardIndex(id)] }

var shardSeed = maphash.MakeSeed()

func (c *Cache) shardIndex(id []byte) int {
	if len(c.shards) == 1 {
		return 0
	}
	return int(maphash.Bytes(shardSeed, id) % uint64(len(c.shards)))
}

// entryBuf copies id and data into one block, the entry's storage.
// Its capacity is the allocator's size class for that length, which is what
// the entry is charged (Config.MaxBytes).
func entryBuf(id, data []byte) []byte {
	if len(data) >= len(id) && len(data) > 0 {
		// Appending data to id capped at its length allocates the block
		// without zeroing the bytes the copies fill (append of a make
		// clears them first): when the growth is at least the old
		// capacity, append's new capacity is the total length, so the
		// block is the size class of id+data, as below.
		return append(id[:len(id):len(id)], data...)
	}
	buf := append([]byte(nil), make([]byte, len(id)+len(data))...)
	copy(buf, id)
	copy(buf[len(id):], data)
	return buf
}

// expiryUS is the absolute expiry of an entry added at nowUS for timeoutMS.
func expiryUS(nowUS int64, timeoutMS uint32) int64 { return (nowUS/1000 + int64(timeoutMS)) * 1000 }

// Add stores a copy of data under a copy of id for timeoutMS milliseconds.
// It reports false if a live entry with that id exists (the first data is
// kept) or the entry is larger than a shard's byte bound.
func (c *Cache) Add(now time.Time, timeoutMS uint32, id, data []byte) bool {
	return c.add(now.UnixMicro(), timeoutMS, id, data) == added
}

func (c *Cache) add(nowUS int64, timeoutMS uint32, id, data []byte) insertResult {
	return c.store(nowUS, id, data, nil, expiryUS(nowUS, timeoutMS), timeoutMS, 0)
}

// insert is insertSeq for a new add.
func (c *Cache) insert(nowUS int64, buf []byte, idLen int, expiry int64, ttlMS uint32) insertResult {
	return c.insertSeq(nowUS, buf, idLen, expiry, ttlMS, 0)
}

// insertSeq stores buf (id then data) with an absolute expiry in µs and the
// lifetime it was added with (0 if not known), at place seq among equal
// expiries (0: a new add's), making room first when the cache is full.
func (c *Cache) insertSeq(nowUS int64, buf []byte, idLen int, expiry int64, ttlMS uint32, seq uint64) insertResult {
	return c.store(nowUS, buf[:idLen], nil, buf, expiry, ttlMS, seq)
}

// store is insertSeq of buf, or with buf nil of a copy of id and data made
// under the shard's lock once id is known not to be live: an ADD refused as
// a duplicate copies nothing.
func (c *Cache) store(nowUS int64, id, data, buf []byte, expiry int64, ttlMS uint32, seq uint64) insertResult {
	s := c.shard(id)
	s.mu.Lock()
	s.purge(nowUS)
	if s.duplicate(id) {
		s.mu.Unlock()
		return duplicate
	}
	if buf == nil {
		buf = entryBuf(id, data)
		id = buf[:len(id)]
	}
	idLen := len(id)
	size := int64(cap(buf)) + EntryOverhead
	if s.oversize(size) {
		s.mu.Unlock()
		return tooLarge
	}
	if c.full(size) {
		// Making room locks every shard, in order: not while holding one.
		s.mu.Unlock()
		c.makeRoom(nowUS, size)
		s.mu.Lock()
		if r := s.refuse(id, size); r != added {
			s.mu.Unlock()
			return r // an add of the same id got in meanwhile
		}
	}
	s.insert(buf, idLen, expiry, ttlMS, seq)
	s.mu.Unlock()
	return added
}

// full reports whether an entry of size charged bytes needs room made.
func (c *Cache) full(size int64) bool {
	return (c.maxItems > 0 && c.items.Load() >= c.maxItems) ||
		(c.maxBytes > 0 && c.bytes.Load()+size > c.maxBytes)
}

// makeRoom drops the entries closest to expiry across the whole cache
// (expired ones first, counted as expirations) until an entry of size
// charged bytes fits: under the count bound by a batch of 1/30 of it, and
// under the byte bound. It holds every shard's lock, taken in order.
func (c *Cache) makeRoom(nowUS int64, size int64) {
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	defer func() {
		for i := range c.shards {
			c.shards[i].mu.Unlock()
		}
	}()
	if !c.full(size) {
		return // another add made room meanwhile
	}
	itemTarget := c.maxItems - max(c.maxItems/30, 1)
	over := func() bool {
		return (c.maxItems > 0 && c.items.Load() > itemTarget) ||
			(c.maxBytes > 0 && c.bytes.Load()+size > c.maxBytes)
	}
	// A small heap of the shards by their first entry picks the global
	// first each time.
	var hs shardHeads
	for i := range c.shards {
		if x, ok := c.shards[i].first(); ok {
			hs.push(head{x, int32(i)})
		}
	}
	for over() && len(hs) > 0 {
		h := hs[0]
		s := &c.shards[h.shard]
		s.order.pop()
		s.forget(h.x.i)
		if h.x.expiry < nowUS {
			s.st.Expirations++
		} else {
			s.st.Evictions++
		}
		if x, ok := s.first(); ok {
			hs.replaceTop(head{x, h.shard})
		} else {
			hs.popTop()
		}
	}
}

// Get copies min(length, len(dst)) bytes of the live entry's data into dst
// and returns the entry's full length; 0 means there is no live entry.
func (c *Cache) Get(now time.Time, id, dst []byte) int {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(now.UnixMicro(), id)
	if e == nil {
		return 0
	}
	d := e.data()
	copy(dst, d)
	return len(d)
}

// Remove deletes a live entry and reports whether there was one.
func (c *Cache) Remove(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(now.UnixMicro(), id)
}

// Have reports whether a live entry exists.
func (c *Cache) Have(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now.UnixMicro())
	_, ok := s.index[string(id)]
	return ok
}

// NumItems is the number of live entries (expired ones are purged).
func (c *Cache) NumItems(now time.Time) int {
	n := 0
	nowUS := now.UnixMicro()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.purge(nowUS)
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the running counters, summed over the shards.
func (c *Cache) Stats() Stats {
	var t Stats
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st := s.st
		s.mu.Unlock()
		t.Items += st.Items
		t.Bytes += st.Bytes
		t.Adds += st.Adds
		t.AddsRefused += st.AddsRefused
		t.Hits += st.Hits
		t.Misses += st.Misses
		t.Removes += st.Removes
		t.Evictions += st.Evictions
		t.Expirations += st.Expirations
	}
	return t
}
