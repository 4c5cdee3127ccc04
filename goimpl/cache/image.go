// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"math"
	"sort"
	"unsafe"
)

// Fork without copying. A forked child has a copy-on-write image of its
// parent's whole memory, this cache's entries included, but not the Go
// runtime that owns it (the C library's child starts a fresh engine). So
// instead of copying the entries out before fork() (Export: time and memory
// in the parent that grow with the cache), the parent only says where they
// are (Freeze: the address and length of each shard's slab, O(shards)), and
// the child's fresh cache indexes them where they lie (Adopt): its entries'
// id+data blocks stay in the inherited pages, shared with the parent until
// either writes them, which neither does (an entry's block is never written
// after it is stored, and the dead runtime never runs again).

// Image locates a frozen cache's entries in this process's memory.
type Image struct {
	// Layout is the shape of an entry as the freezing code saw it; Adopt
	// refuses an image of another shape (an engine of another build).
	Layout uint64
	Shards []ShardImage
}

// ShardImage is one shard's slab: Len entries from Entries on.
type ShardImage struct {
	Entries unsafe.Pointer
	Len     int
}

// entryLayout fingerprints the entry struct: its size and each field's
// offset, a byte each, under a constant tag.
func entryLayout() uint64 {
	var e entry
	return 0xdc<<56 | uint64(unsafe.Sizeof(e))<<40 | uint64(unsafe.Offsetof(e.seq))<<32 |
		uint64(unsafe.Offsetof(e.buf))<<24 | uint64(unsafe.Offsetof(e.idLen))<<16 |
		uint64(unsafe.Offsetof(e.ttlMS))<<8 | uint64(unsafe.Sizeof(e.buf))
}

// Freeze locks every shard and returns where its entries are; the image
// stays valid until thaw is called, which unlocks (other goroutines' calls
// wait meanwhile). Between the two the caller forks: the child's copy of
// the memory is then the image, consistent, whatever the parent does next.
func (c *Cache) Freeze() (img Image, thaw func()) {
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	img.Layout = entryLayout()
	img.Shards = make([]ShardImage, len(c.shards))
	for i := range c.shards {
		if es := c.shards[i].slab.entries; len(es) > 0 {
			img.Shards[i] = ShardImage{unsafe.Pointer(unsafe.SliceData(es)), len(es)}
		}
	}
	return img, func() {
		for i := range c.shards {
			c.shards[i].mu.Unlock()
		}
	}
}

// Adopt stores the entries of an image frozen by this build (in this
// process or, through fork(), its parent), with their absolute expiries and
// in their eviction order, as Import does, but without copying their bytes:
// the entries refer to the image's blocks, which must stay mapped and
// unwritten for as long as the cache lives (true of a frozen parent's
// memory in a forked child). It reports false, storing nothing, for an
// image of another layout or with an entry out of shape.
func (c *Cache) Adopt(img Image) bool {
	if img.Layout != entryLayout() {
		return false
	}
	var live []entry
	for _, sh := range img.Shards {
		if sh.Len == 0 {
			continue
		}
		if sh.Entries == nil || sh.Len < 0 {
			return false
		}
		for _, e := range unsafe.Slice((*entry)(sh.Entries), sh.Len) {
			if e.seq == 0 {
				continue // a free slot
			}
			if e.idLen < 0 || int(e.idLen) > len(e.buf) || len(e.buf) > cap(e.buf) || len(e.buf) > maxEntrySize {
				return false
			}
			live = append(live, e)
		}
	}
	// seq orders adds across the shards of one cache: (expiry, seq) is the
	// whole cache's eviction order, which insert numbers afresh.
	sort.Slice(live, func(a, b int) bool {
		return live[a].expiry < live[b].expiry || (live[a].expiry == live[b].expiry && live[a].seq < live[b].seq)
	})
	for _, e := range live {
		// No clock: nothing is purged as expired on the way in.
		c.insert(math.MinInt64, e.buf, int(e.idLen), e.expiry, e.ttlMS)
	}
	return true
}
