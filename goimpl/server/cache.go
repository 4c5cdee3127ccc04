package server

import (
	"container/heap"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is a session store: the Go shape of the C DC_CACHE_cb table. The
// server never reads the clock itself; every call carries the caller's now.
// An entry added at now with timeout t ms expires at now (truncated to the
// millisecond) + t, and is gone once now is strictly later than that.
type Cache interface {
	// Add stores data under id for timeoutMS milliseconds. It reports
	// false if a live entry with that id exists (the first data is kept)
	// or the cache refuses the entry.
	Add(now time.Time, timeoutMS uint32, id, data []byte) bool
	// Get copies up to len(dst) bytes of the entry's data into dst and
	// returns the entry's full length, or 0 if there is no live entry.
	Get(now time.Time, id, dst []byte) int
	// Remove deletes a live entry and reports whether there was one.
	Remove(now time.Time, id []byte) bool
	// Have reports whether a live entry exists.
	Have(now time.Time, id []byte) bool
	// NumItems is the number of live entries.
	NumItems(now time.Time) int
}

// Limits of the default cache, as in the original library.
const (
	DefaultCacheMinSize = 64    // DC_CACHE_MIN_SIZE
	DefaultCacheMaxSize = 60000 // DC_CACHE_MAX_SIZE
)

// EntryOverhead is what Config.MaxBytes charges per entry beyond its id and
// data: the map slot, the heap slot and the entry header, measured on 64-bit
// Go (see BenchmarkMemoryPerEntry).
const EntryOverhead = 150

// Config sizes a cache built by NewCache.
type Config struct {
	// MaxSessions bounds the number of entries (0 = no count bound).
	MaxSessions int
	// MaxBytes bounds id+data+EntryOverhead summed over entries (0 = none).
	MaxBytes int64
	// MinLifetime raises every add timeout below it to it (0 = off). Some
	// clients send sub-second lifetimes (httpd 2.4 passes only the 0–999 ms
	// remainder of the real lifetime).
	MinLifetime time.Duration
	// Shards splits the cache into independently locked parts so that
	// concurrent connections do not contend; bounds are divided evenly.
	// 0 picks 16; 1 gives the exact eviction order of the original.
	Shards int
}

// Stats are running counters of a cache built by NewCache.
type Stats struct {
	Items       int64
	Bytes       int64
	Adds        uint64
	AddsRefused uint64
	Hits        uint64
	Misses      uint64
	Removes     uint64
	Evictions   uint64
	Expirations uint64
}

// ErrCacheSize is returned by NewDefaultCache for a size outside 64..60000.
var ErrCacheSize = errors.New("distcache: cache size must be between 64 and 60000 sessions")

// NewDefaultCache is the original library's default cache contract: between
// 64 and 60000 sessions, and when full, the max/30 (at least one) entries
// closest to expiry are dropped to make room. Unlike the original, lookups
// are hashed, expiry does not scan, and evicted entries are freed.
func NewDefaultCache(maxSessions int) (*ShardedCache, error) {
	if maxSessions < DefaultCacheMinSize || maxSessions > DefaultCacheMaxSize {
		return nil, ErrCacheSize
	}
	return NewCache(Config{MaxSessions: maxSessions, Shards: 1}), nil
}

// NewCache builds a cache without the original's 60000-session cap, bounded
// by count and/or bytes. When a bound is reached, the entries closest to
// expiry are evicted: a batch of 1/30 of the shard's count bound (at least
// one) when the count is full, then single entries until the bytes fit. It
// is safe for concurrent use.
func NewCache(cfg Config) *ShardedCache {
	n := cfg.Shards
	if n <= 0 {
		n = 16
	}
	if cfg.MaxSessions > 0 && n > cfg.MaxSessions {
		n = 1
	}
	c := &ShardedCache{shards: make([]shard, n), minLifetime: uint32(cfg.MinLifetime / time.Millisecond)}
	if cfg.MinLifetime > 0 && c.minLifetime == 0 {
		c.minLifetime = 1
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.index = make(map[string]*entry)
		s.stats = &c.stats
		if cfg.MaxSessions > 0 {
			s.maxItems = (cfg.MaxSessions + n - 1 - i) / n // spread the remainder
		}
		if cfg.MaxBytes > 0 {
			s.maxBytes = cfg.MaxBytes / int64(n)
		}
	}
	return c
}

// ShardedCache implements Cache.
type ShardedCache struct {
	shards      []shard
	minLifetime uint32
	stats       counters
}

type counters struct {
	items, bytes                                    atomic.Int64
	adds, refused, hits, misses, removes, evs, exps atomic.Uint64
}

type shard struct {
	mu       sync.Mutex
	index    map[string]*entry
	order    expiryHeap
	seq      uint64
	bytes    int64
	maxItems int
	maxBytes int64
	stats    *counters
	_        [40]byte // keep shards' locks on separate cache lines
}

// entry holds id and data in one allocation: buf[:idLen] is the id.
type entry struct {
	expiry int64 // µs since the epoch; live while now <= expiry
	seq    uint64
	idLen  int
	buf    []byte
	pos    int // index in the heap
}

func (e *entry) data() []byte { return e.buf[e.idLen:] }
func (e *entry) size() int64  { return int64(len(e.buf)) + EntryOverhead }

func micros(t time.Time) int64 { return t.UnixMicro() }

// fnv1a picks a shard; ids are random (TLS session ids) so any mix works.
func (c *ShardedCache) shard(id []byte) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	h := uint32(2166136261)
	for _, b := range id {
		h = (h ^ uint32(b)) * 16777619
	}
	return &c.shards[h%uint32(len(c.shards))]
}

// Add implements Cache.
func (c *ShardedCache) Add(now time.Time, timeoutMS uint32, id, data []byte) bool {
	if timeoutMS < c.minLifetime {
		timeoutMS = c.minLifetime
	}
	s := c.shard(id)
	nowUS := micros(now)
	e := &entry{
		expiry: (nowUS/1000 + int64(timeoutMS)) * 1000,
		idLen:  len(id),
		buf:    make([]byte, len(id)+len(data)),
	}
	copy(e.buf, id)
	copy(e.buf[len(id):], data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(nowUS)
	if _, dup := s.index[string(id)]; dup {
		c.stats.refused.Add(1)
		return false
	}
	if s.maxBytes > 0 && e.size() > s.maxBytes {
		c.stats.refused.Add(1)
		return false
	}
	if s.maxItems > 0 && len(s.index) >= s.maxItems {
		s.evict(max(s.maxItems/30, 1))
	}
	for s.maxBytes > 0 && s.bytes+e.size() > s.maxBytes {
		s.evict(1)
	}
	s.seq++
	e.seq = s.seq
	s.index[string(id)] = e
	heap.Push(&s.order, e)
	s.bytes += e.size()
	c.stats.items.Add(1)
	c.stats.bytes.Add(e.size())
	c.stats.adds.Add(1)
	return true
}

// Get implements Cache.
func (c *ShardedCache) Get(now time.Time, id, dst []byte) int {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(micros(now))
	e := s.index[string(id)]
	if e == nil {
		c.stats.misses.Add(1)
		return 0
	}
	c.stats.hits.Add(1)
	copy(dst, e.data())
	return len(e.data())
}

// Remove implements Cache.
func (c *ShardedCache) Remove(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(micros(now))
	e := s.index[string(id)]
	if e == nil {
		return false
	}
	heap.Remove(&s.order, e.pos)
	s.drop(e)
	c.stats.removes.Add(1)
	return true
}

// Have implements Cache.
func (c *ShardedCache) Have(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(micros(now))
	return s.index[string(id)] != nil
}

// NumItems implements Cache.
func (c *ShardedCache) NumItems(now time.Time) int {
	n := 0
	nowUS := micros(now)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.purge(nowUS)
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the running counters.
func (c *ShardedCache) Stats() Stats {
	st := &c.stats
	return Stats{
		Items: st.items.Load(), Bytes: st.bytes.Load(),
		Adds: st.adds.Load(), AddsRefused: st.refused.Load(),
		Hits: st.hits.Load(), Misses: st.misses.Load(), Removes: st.removes.Load(),
		Evictions: st.evs.Load(), Expirations: st.exps.Load(),
	}
}

// purge drops the entries that expired before nowUS, soonest first.
func (s *shard) purge(nowUS int64) {
	for len(s.order) > 0 && s.order[0].expiry < nowUS {
		s.drop(heap.Pop(&s.order).(*entry))
		s.stats.exps.Add(1)
	}
}

// evict drops up to n live entries closest to expiry.
func (s *shard) evict(n int) {
	for ; n > 0 && len(s.order) > 0; n-- {
		s.drop(heap.Pop(&s.order).(*entry))
		s.stats.evs.Add(1)
	}
}

// drop forgets an entry already taken out of the heap.
func (s *shard) drop(e *entry) {
	delete(s.index, string(e.buf[:e.idLen]))
	s.bytes -= e.size()
	s.stats.items.Add(-1)
	s.stats.bytes.Add(-e.size())
}

// expiryHeap orders entries by expiry, then by insertion.
type expiryHeap []*entry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].expiry != h[j].expiry {
		return h[i].expiry < h[j].expiry
	}
	return h[i].seq < h[j].seq
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.pos = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
