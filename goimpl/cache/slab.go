// SPDX-License-Identifier: Apache-2.0

package cache

// entry holds id and data in one block; the index key aliases buf[:idLen].
// seq is 0 while the slab slot is unused.
type entry struct {
	expiry int64 // µs since the epoch; live while now <= expiry
	seq    uint64
	buf    []byte
	idLen  int32
	ttlMS  uint32 // the lifetime it was added with (0: not known, imported)
}

func (e *entry) id() []byte   { return e.buf[:e.idLen] }
func (e *entry) data() []byte { return e.buf[e.idLen:] }
func (e *entry) size() int64  { return int64(cap(e.buf)) + EntryOverhead }

// slab stores a shard's entries in one slice addressed by int32 slot, so
// that the shard's index and expiry order refer to entries without
// pointers: the garbage collector does not scan them and moving their
// elements costs no write barriers. Freed slots are reused.
type slab struct {
	entries []entry
	free    []int32 // unused slots
}

func (b *slab) at(i int32) *entry { return &b.entries[i] }

// alloc stores e in a free slot and returns the slot.
func (b *slab) alloc(e entry) int32 {
	var i int32
	if n := len(b.free); n > 0 {
		i = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		b.entries = append(b.entries, entry{})
		i = int32(len(b.entries) - 1)
	}
	b.entries[i] = e
	return i
}

// release empties slot i for reuse.
func (b *slab) release(i int32) {
	b.entries[i] = entry{}
	b.free = append(b.free, i)
}

// live reports whether x still names the entry it was made for.
func (b *slab) live(x slot) bool { return b.entries[x.i].seq == x.seq }
