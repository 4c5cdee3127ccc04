package server

import (
	"errors"
	"sort"
	"sync"
	"time"
	"unsafe"
)

// Cache is a session store: the Go shape of the C DC_CACHE_cb table (the C
// layer adapts a caller's callbacks to it; the tools use it directly).
//
// The server never reads the clock; every call carries the caller's now.
// An entry added at now with a timeout of t milliseconds expires at now
// truncated to the millisecond plus t, and is gone once now is strictly
// later than that (compared to the microsecond): live at the expiry
// instant, gone 1µs after it (PROTOCOL.md §9.6). Reads never extend a
// lifetime.
//
// The server guarantees what DC_CACHE_cb implementations could rely on:
// Add is called with 1..64-byte ids, 1..32768 bytes of data and a timeout
// of at most 604800000 ms; Get, Remove and Have receive the raw request
// payload as the id (0..32768 bytes, not validated).
type Cache interface {
	// Add stores a copy of data under a copy of id for timeoutMS
	// milliseconds. It reports false if a live entry with that id exists
	// (the first data is kept) or the cache refuses the entry for any
	// other reason; the server answers both with 0x65.
	Add(now time.Time, timeoutMS uint32, id, data []byte) bool
	// Get copies min(length, len(dst)) bytes of the entry's data into dst
	// and returns the entry's full length; 0 means there is no live entry
	// (so empty data reads as a miss).
	Get(now time.Time, id, dst []byte) int
	// Remove deletes a live entry and reports whether there was one.
	Remove(now time.Time, id []byte) bool
	// Have reports whether a live entry exists.
	Have(now time.Time, id []byte) bool
	// NumItems is the number of live entries (expired ones are purged).
	NumItems(now time.Time) int
}

// Limits of the default cache, as in the original library.
const (
	DefaultCacheMinSize = 64    // DC_CACHE_MIN_SIZE
	DefaultCacheMaxSize = 60000 // DC_CACHE_MAX_SIZE
)

// EntryOverhead is what Config.MaxBytes charges per entry on top of its id
// and data: its slab slot, map slot and expiry-order slot plus allocation
// rounding, as measured on 64-bit Go (BenchmarkMemoryPerEntry reports the
// real figure).
const EntryOverhead = 128

// maxEntrySize is the largest entry the protocol can deliver, charged.
const maxEntrySize = 32768 + EntryOverhead

// Config sizes a cache built by NewCache. The zero value is an unbounded
// cache with 16 shards.
type Config struct {
	// MaxSessions bounds the number of entries (0 = no count bound).
	MaxSessions int
	// MaxBytes bounds the sum over entries of len(id)+len(data)+
	// EntryOverhead (0 = no byte bound). It is a bound on the cache's
	// own accounting, which tracks the Go heap the entries hold to within
	// a few percent; the process uses more (runtime, GC headroom).
	MaxBytes int64
	// MinLifetime raises every add timeout below it to it (0 = off).
	// Some clients send sub-second lifetimes: httpd 2.4 passes only the
	// 0–999 ms remainder of the real lifetime (CONSUMERS.md).
	MinLifetime time.Duration
	// Shards splits the cache into independently locked parts so that
	// concurrent connections rarely contend; the bounds are divided
	// evenly between them, and eviction order is exact within a shard.
	// 0 picks 16 (fewer when the bounds are so small that a shard could
	// not hold a few maximal entries); 1 gives exactly the original's
	// global eviction order.
	Shards int
}

// Stats are running counters of a ShardedCache.
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

// ErrCacheSize is returned by NewDefaultCache for a size outside 64..60000.
var ErrCacheSize = errors.New("distcache: cache size must be between 64 and 60000 sessions")

// NewDefaultCache is the original library's default cache contract: between
// 64 and 60000 sessions (ErrCacheSize otherwise); a duplicate live id is
// refused; when the cache is full an add first drops the max/30 entries (at
// least one) closest to expiry, ties in insertion order — live ones too,
// whatever their use. Unlike the original, lookups are hashed, expiry and
// eviction cost O(log n) instead of a scan and a memmove, and evicted
// entries are freed (EDGES E-19, E-20). It is a CacheFactory. The result is
// a *ShardedCache with one shard: safe for concurrent use, and Stats is
// available through a type assertion.
func NewDefaultCache(maxSessions int) (Cache, error) {
	if maxSessions < DefaultCacheMinSize || maxSessions > DefaultCacheMaxSize {
		return nil, ErrCacheSize
	}
	return NewCache(Config{MaxSessions: maxSessions, Shards: 1}), nil
}

// NewCache builds the cache of our own dc_server: no 60000-session cap,
// bounded by count and/or bytes, with an optional lifetime floor. It is safe
// for concurrent use by many goroutines.
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
func NewCache(cfg Config) *ShardedCache {
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
	c := &ShardedCache{shards: make([]shard, n)}
	if cfg.MinLifetime > 0 {
		ms := (cfg.MinLifetime + time.Millisecond - 1) / time.Millisecond
		c.minLifetime = uint32(min(ms, 1<<32-1))
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

// ShardedCache implements Cache; see NewCache and NewDefaultCache.
type ShardedCache struct {
	shards      []shard
	minLifetime uint32 // ms
}

// A shard keeps its entries in a slab indexed by int32, so that neither the
// index's values nor the expiry heap hold pointers: the garbage collector
// does not scan the heap and moving its slots costs no write barriers. An
// entry is one heap object, its id+data block, which the index key aliases.
// The slab, index and heap shrink again after a peak (shrink).
type shard struct {
	mu       sync.Mutex
	index    map[string]int32 // id → slab slot of a live (or not yet purged) entry
	slab     []entry
	free     []int32 // unused slab slots
	order    expiryHeap
	dead     int // slots in order whose entry was removed
	seq      uint64
	maxItems int
	maxBytes int64
	st       Stats
	_        [64]byte // keep neighbouring shards' locks off one cache line
}

// entry holds id and data in one block; the index key aliases buf[:idLen].
// seq is 0 while the slab slot is unused.
type entry struct {
	expiry int64 // µs since the epoch; live while now <= expiry
	seq    uint64
	buf    []byte
	idLen  int32
}

func (e *entry) data() []byte { return e.buf[e.idLen:] }
func (e *entry) size() int64  { return int64(len(e.buf)) + EntryOverhead }

// shard picks a shard by FNV-1a of the id.
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
	timeoutMS = max(timeoutMS, c.minLifetime)
	nowUS := now.UnixMicro()
	buf := make([]byte, len(id)+len(data))
	copy(buf, id)
	copy(buf[len(id):], data)
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(nowUS)
	return s.insert(buf, len(id), (nowUS/1000+int64(timeoutMS))*1000)
}

// insert stores buf (id then data) with an absolute expiry in µs, evicting
// to stay within the bounds; false for a duplicate or an entry larger than
// the byte bound.
func (s *shard) insert(buf []byte, idLen int, expiry int64) bool {
	size := int64(len(buf)) + EntryOverhead
	if _, dup := s.index[string(buf[:idLen])]; dup || (s.maxBytes > 0 && size > s.maxBytes) {
		s.st.AddsRefused++
		return false
	}
	if s.maxItems > 0 && len(s.index) >= s.maxItems {
		s.evict(max(s.maxItems/30, 1))
	}
	for s.maxBytes > 0 && s.st.Bytes+size > s.maxBytes && len(s.index) > 0 {
		s.evict(1)
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.slab = append(s.slab, entry{})
		i = int32(len(s.slab) - 1)
	}
	s.seq++
	e := &s.slab[i]
	*e = entry{expiry: expiry, seq: s.seq, buf: buf, idLen: int32(idLen)}
	var key string
	if idLen > 0 {
		key = unsafe.String(&buf[0], idLen) // buf is never written again
	}
	s.index[key] = i
	s.order.push(slot{e.expiry, e.seq, i})
	s.st.Items++
	s.st.Bytes += size
	s.st.Adds++
	return true
}

// CacheEntry is one entry as Export gives it and Import takes it.
type CacheEntry struct {
	ID, Data []byte
	Expiry   int64 // µs since the epoch; the entry is live while now <= Expiry
}

// Export copies out every entry not yet purged, each shard's in expiry
// order (ties in insertion order). With Import it carries a cache's
// contents into another process (the C library's fork restore).
func (c *ShardedCache) Export() []CacheEntry {
	var out []CacheEntry
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		live := make([]slot, 0, len(s.index))
		for _, x := range s.order {
			if s.slab[x.i].seq == x.seq {
				live = append(live, x)
			}
		}
		sort.Slice(live, func(a, b int) bool { return live[a].before(live[b]) })
		for _, x := range live {
			e := &s.slab[x.i]
			out = append(out, CacheEntry{
				ID:     append([]byte(nil), e.buf[:e.idLen]...),
				Data:   append([]byte(nil), e.data()...),
				Expiry: e.expiry,
			})
		}
		s.mu.Unlock()
	}
	return out
}

// Import stores entries with their absolute expiries, as Add would (no
// lifetime floor, duplicates refused, bounds kept); given Export's order,
// eviction order is preserved.
func (c *ShardedCache) Import(entries []CacheEntry) {
	for _, ce := range entries {
		buf := make([]byte, len(ce.ID)+len(ce.Data))
		copy(buf, ce.ID)
		copy(buf[len(ce.ID):], ce.Data)
		s := c.shard(ce.ID)
		s.mu.Lock()
		s.insert(buf, len(ce.ID), ce.Expiry)
		s.mu.Unlock()
	}
}

// Get implements Cache.
func (c *ShardedCache) Get(now time.Time, id, dst []byte) int {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now.UnixMicro())
	i, ok := s.index[string(id)]
	if !ok {
		s.st.Misses++
		return 0
	}
	s.st.Hits++
	d := s.slab[i].data()
	copy(dst, d)
	return len(d)
}

// Remove implements Cache.
func (c *ShardedCache) Remove(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now.UnixMicro())
	i, ok := s.index[string(id)]
	if !ok {
		return false
	}
	s.forget(i) // its slot in order goes stale
	s.dead++
	if s.dead > 1024 && s.dead > len(s.order)/2 {
		s.compact()
	}
	s.shrink()
	s.st.Removes++
	return true
}

// Have implements Cache.
func (c *ShardedCache) Have(now time.Time, id []byte) bool {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now.UnixMicro())
	_, ok := s.index[string(id)]
	return ok
}

// NumItems implements Cache.
func (c *ShardedCache) NumItems(now time.Time) int {
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
func (c *ShardedCache) Stats() Stats {
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

// purge drops the entries that expired before nowUS, soonest first.
func (s *shard) purge(nowUS int64) {
	n := 0
	for x, ok := s.first(); ok && x.expiry < nowUS; x, ok = s.first() {
		s.order.pop()
		s.forget(x.i)
		n++
	}
	if n > 0 {
		s.st.Expirations += uint64(n)
		s.shrink()
	}
}

// evict drops up to n live entries closest to expiry.
func (s *shard) evict(n int) {
	for ; n > 0; n-- {
		x, ok := s.first()
		if !ok {
			return
		}
		s.order.pop()
		s.forget(x.i)
		s.st.Evictions++
	}
}

// first returns the slot of the live entry closest to expiry (leaving it
// in order), discarding stale slots of removed entries on the way.
func (s *shard) first() (slot, bool) {
	for len(s.order) > 0 {
		x := s.order[0]
		if s.slab[x.i].seq == x.seq {
			return x, true
		}
		s.order.pop()
		s.dead--
	}
	return slot{}, false
}

// forget takes a live entry out of the index and the accounting and frees
// its slab slot.
func (s *shard) forget(i int32) {
	e := &s.slab[i]
	delete(s.index, string(e.buf[:e.idLen]))
	s.st.Items--
	s.st.Bytes -= e.size()
	*e = entry{}
	s.free = append(s.free, i)
}

// shrinkMin is the slab size below which shrink does nothing.
const shrinkMin = 4096

// shrink gives memory back after a peak: once the live entries fill under
// a quarter of the slab, the slab, the index (Go maps never shrink) and
// the expiry order are rebuilt at twice the live size. O(n), and n fell by
// at least 3n since the slab last grew, so O(1) per entry dropped.
func (s *shard) shrink() {
	if cap(s.slab) < shrinkMin || 4*len(s.index) >= cap(s.slab) {
		return
	}
	slab := make([]entry, 0, 2*len(s.index))
	index := make(map[string]int32, 2*len(s.index))
	order := make(expiryHeap, 0, 2*len(s.index))
	for _, x := range s.order {
		e := s.slab[x.i]
		if e.seq != x.seq {
			continue // stale: its entry was removed
		}
		j := int32(len(slab))
		slab = append(slab, e)
		index[unsafe.String(unsafe.SliceData(e.buf), e.idLen)] = j
		order = append(order, slot{x.expiry, x.seq, j})
	}
	for i := len(order)/2 - 1; i >= 0; i-- {
		order.down(i, order[i])
	}
	s.slab, s.index, s.order, s.free, s.dead = slab, index, order, nil, 0
}

// compact drops the stale slots from order and rebuilds the heap: O(n),
// run when they are over half of it, so O(1) per remove amortised.
func (s *shard) compact() {
	a := s.order
	k := 0
	for _, x := range a {
		if s.slab[x.i].seq == x.seq {
			a[k] = x
			k++
		}
	}
	a = a[:k]
	for i := k/2 - 1; i >= 0; i-- {
		a.down(i, a[i])
	}
	if cap(a) > 2*k+64 {
		a = append(expiryHeap(nil), a...)
	}
	s.order, s.dead = a, 0
}

// slot is one element of the expiry order: the sort key and the slab slot.
type slot struct {
	expiry int64
	seq    uint64
	i      int32
}

func (a slot) before(b slot) bool {
	return a.expiry < b.expiry || (a.expiry == b.expiry && a.seq < b.seq)
}

// expiryHeap is a binary min-heap of slots ordered by (expiry, seq).
// Removed entries are not taken out (that would need a back index written on
// every move); their slots are skipped when they reach the top and dropped
// in bulk by compact.
type expiryHeap []slot

func (h *expiryHeap) push(x slot) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !x.before(a[p]) {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = x
}

func (h *expiryHeap) pop() {
	a := *h
	n := len(a) - 1
	last := a[n]
	*h = a[:n]
	if n > 0 {
		h.down(0, last)
	}
}

// down places x at i or below, restoring the heap order.
func (h expiryHeap) down(i int, x slot) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].before(h[c]) {
			c++
		}
		if !h[c].before(x) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}
