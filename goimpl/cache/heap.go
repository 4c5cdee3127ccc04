// SPDX-License-Identifier: Apache-2.0

package cache

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

// init establishes the heap order over the whole slice.
func (h expiryHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i, h[i])
	}
}

// head is a shard's entry closest to expiry, for choosing across shards.
type head struct {
	x     slot
	shard int32
}

// shardHeads is a binary min-heap of heads by their slots' order.
type shardHeads []head

func (h *shardHeads) push(x head) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !x.x.before(a[p].x) {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = x
}

// replaceTop puts x in place of the first head and restores the order.
func (h shardHeads) replaceTop(x head) {
	n := len(h)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].x.before(h[c].x) {
			c++
		}
		if !h[c].x.before(x.x) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}

func (h *shardHeads) popTop() {
	a := *h
	n := len(a) - 1
	last := a[n]
	*h = a[:n]
	if n > 0 {
		(*h).replaceTop(last)
	}
}
