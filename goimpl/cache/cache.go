package cache

import (
	"errors"
	"time"
)

// Limits of the original library's default cache (DC_CACHE_MIN_SIZE,
// DC_CACHE_MAX_SIZE).
const (
	DefaultMinSize = 64
	DefaultMaxSize = 60000
)

// EntryOverhead is what Config.MaxBytes charges per entry on top of its id
// and data: its slab slot, map slot and expiry-order slot plus allocation
// rounding, as measured on 64-bit Go (BenchmarkMemoryPerEntry reports the
// real figure).
const EntryOverhead = 128

// maxEntrySize is the largest entry the protocol can deliver, charged.
const maxEntrySize = 32768 + EntryOverhead

// Config sizes a cache built by New. The zero value is an unbounded cache
// with 16 shards on the real clock.
type Config struct {
	// MaxSessions bounds the number of entries (0 = no count bound).
	MaxSessions int
	// MaxBytes bounds the sum over entries of len(id)+len(data)+
	// EntryOverhead (0 = no byte bound). It is a bound on the cache's
	// own accounting, which tracks the Go heap the entries hold to within
	// a few percent; the process uses more (runtime, GC headroom).
	MaxBytes int64
	// Shards splits the cache into independently locked parts so that
	// concurrent connections rarely contend; the bounds are divided
	// evenly between them, and eviction order is exact within a shard.
	// 0 picks 16 (fewer when the bounds are so small that a shard could
	// not hold a few maximal entries); 1 gives exactly the original's
	// global eviction order.
	Shards int
	// Now is the clock of the Store view (nil = time.Now). The Cache
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
// Eviction keeps the original's rule: the entries closest to expiry go
// first (ties: the earlier added). When a shard is at its count bound, an
// add drops a batch of 1/30 of that bound (at least one), as the original
// does; when the new entry would take a shard over its byte bound, entries
// are dropped one at a time until it fits. An entry larger than a shard's
// whole byte bound is refused. Soonest-to-expire rather than LRU: the
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
	c := &Cache{shards: make([]shard, n), now: cfg.Now, onHit: cfg.OnHit}
	if c.now == nil {
		c.now = time.Now
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.index = make(map[string]int32)
		if cfg.MaxSessions > 0 {
			s.maxItems = cfg.MaxSessions / n
			if i < cfg.MaxSessions%n {
				s.maxItems++
			}
		}
		if cfg.MaxBytes > 0 {
			s.maxBytes = cfg.MaxBytes / int64(n)
		}
	}
	return c
}

// Cache is the sharded session cache; see New and NewDefault. Its methods
// take the caller's now (the shape of the C DC_CACHE_cb table, which
// goimpl/server's Cache interface names); Store gives the same entries as a
// store.Store on the configured clock.
type Cache struct {
	shards []shard
	now    func() time.Time
	onHit  func(age time.Duration)
}

// shard picks a shard by FNV-1a of the id.
func (c *Cache) shard(id []byte) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	h := uint32(2166136261)
	for _, b := range id {
		h = (h ^ uint32(b)) * 16777619
	}
	return &c.shards[h%uint32(len(c.shards))]
}

// entryBuf copies id and data into one block, the entry's storage.
func entryBuf(id, data []byte) []byte {
	buf := make([]byte, len(id)+len(data))
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
	buf := entryBuf(id, data)
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(nowUS)
	return s.insert(buf, len(id), expiryUS(nowUS, timeoutMS), timeoutMS)
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
