// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"sync"
	"unsafe"
)

// A shard is one independently locked part of a Cache: an index from id to
// slab slot, the slab, and the expiry order. An entry is one heap object,
// its id+data block, which the index key aliases. The slab, index and heap
// shrink again after a peak (shrink).
type shard struct {
	mu    sync.Mutex
	index map[string]int32 // id → slab slot of a live (or not yet purged) entry
	slab  slab
	order expiryHeap
	dead  int // slots in order whose entry was removed
	c     *Cache
	st    Stats
	// While a copy is being taken (StartCopy), the changes since this
	// shard's copy, as stream records.
	recording  bool
	journal    []byte
	journalled int
	_          [64]byte // keep neighbouring shards' locks off one cache line
}

type insertResult int

const (
	added     insertResult = iota
	duplicate              // a live entry has the id
	tooLarge               // larger than the shard's whole byte bound
)

// refuse says why an entry of id and size charged bytes cannot be added
// (a live duplicate, or larger than the whole byte bound), or added.
func (s *shard) refuse(id []byte, size int64) insertResult {
	switch {
	case s.duplicate(id):
		return duplicate
	case s.oversize(size):
		return tooLarge
	}
	return added
}

// oversize reports (and counts as a refused add) whether an entry of size
// charged bytes is larger than the whole byte bound.
func (s *shard) oversize(size int64) bool {
	if s.c.maxBytes > 0 && size > s.c.maxBytes {
		s.st.AddsRefused++
		return true
	}
	return false
}

// duplicate reports (and counts as a refused add) whether id is in the
// shard.
func (s *shard) duplicate(id []byte) bool {
	if _, dup := s.index[string(id)]; dup {
		s.st.AddsRefused++
		return true
	}
	return false
}

// insert stores buf (id then data), whose id is not in the shard, with an
// absolute expiry in µs and the lifetime it was added with (0: not known),
// at place seq of the eviction order among equal expiries (0: after every
// entry so far).
func (s *shard) insert(buf []byte, idLen int, expiry int64, ttlMS uint32, seq uint64) {
	size := int64(cap(buf)) + EntryOverhead
	if seq == 0 {
		seq = s.c.seq.Add(1)
	}
	i := s.slab.alloc(entry{expiry: expiry, seq: seq, buf: buf, idLen: int32(idLen), ttlMS: ttlMS})
	var key string
	if idLen > 0 {
		key = unsafe.String(&buf[0], idLen) // buf is never written again
	}
	s.index[key] = i
	s.order.push(slot{expiry, seq, i})
	s.st.Items++
	s.st.Bytes += size
	s.st.Adds++
	s.c.items.Add(1)
	s.c.bytes.Add(size)
	if s.recording {
		s.journalAdd(s.slab.at(i))
	}
}

// lookup purges what expired before nowUS and returns the live entry id,
// counting a hit or a miss; nil when there is none.
func (s *shard) lookup(nowUS int64, id []byte) *entry {
	s.purge(nowUS)
	i, ok := s.index[string(id)]
	if !ok {
		s.st.Misses++
		return nil
	}
	s.st.Hits++
	return s.slab.at(i)
}

// remove deletes the live entry id, if there is one.
func (s *shard) remove(nowUS int64, id []byte) bool {
	s.purge(nowUS)
	i, ok := s.index[string(id)]
	if !ok {
		return false
	}
	s.drop(i)
	s.st.Removes++
	if s.recording {
		s.journalRemove(id)
	}
	return true
}

// drop deletes the entry in slot i outside the expiry order's pop path: its
// slot in order goes stale, and order is compacted when stale slots are
// over half of it.
func (s *shard) drop(i int32) {
	s.forget(i)
	s.dead++
	if s.dead > 1024 && s.dead > len(s.order)/2 {
		s.compact()
	}
	s.shrink()
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

// first returns the slot of the live entry closest to expiry (leaving it
// in order), discarding stale slots of removed entries on the way.
func (s *shard) first() (slot, bool) {
	for len(s.order) > 0 {
		x := s.order[0]
		if s.slab.live(x) {
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
	e := s.slab.at(i)
	delete(s.index, string(e.id()))
	s.st.Items--
	s.st.Bytes -= e.size()
	s.c.items.Add(-1)
	s.c.bytes.Add(-e.size())
	s.slab.release(i)
}

// shrinkMin is the slab size below which shrink does nothing.
const shrinkMin = 4096

// shrink gives memory back after a peak: once the live entries fill under
// a quarter of the slab, the slab, the index (Go maps never shrink) and
// the expiry order are rebuilt at twice the live size. O(n), and n fell by
// at least 3n since the slab last grew, so O(1) per entry dropped.
func (s *shard) shrink() {
	if cap(s.slab.entries) < shrinkMin || 4*len(s.index) >= cap(s.slab.entries) {
		return
	}
	entries := make([]entry, 0, 2*len(s.index))
	index := make(map[string]int32, 2*len(s.index))
	order := make(expiryHeap, 0, 2*len(s.index))
	for _, x := range s.order {
		if !s.slab.live(x) {
			continue // stale: its entry was removed
		}
		e := *s.slab.at(x.i)
		j := int32(len(entries))
		entries = append(entries, e)
		index[unsafe.String(unsafe.SliceData(e.buf), e.idLen)] = j
		order = append(order, slot{x.expiry, x.seq, j})
	}
	order.init()
	s.slab, s.index, s.order, s.dead = slab{entries: entries}, index, order, 0
}

// compact drops the stale slots from order and rebuilds the heap: O(n),
// run when they are over half of it, so O(1) per remove amortised.
func (s *shard) compact() {
	a := s.order
	k := 0
	for _, x := range a {
		if s.slab.live(x) {
			a[k] = x
			k++
		}
	}
	a = a[:k]
	a.init()
	if cap(a) > 2*k+64 {
		a = append(expiryHeap(nil), a...)
	}
	s.order, s.dead = a, 0
}
