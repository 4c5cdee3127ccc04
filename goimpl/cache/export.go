// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"math"
	"sort"
)

// Entry is one entry as Export gives it and Import takes it.
type Entry struct {
	ID, Data []byte
	Expiry   int64 // µs since the epoch; the entry is live while now <= Expiry
}

// Export copies out every entry not yet purged, each shard's in expiry
// order (ties in insertion order). With Import it carries a cache's
// contents into another process (the C library's fork restore).
func (c *Cache) Export() []Entry {
	var out []Entry
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		live := make([]slot, 0, len(s.index))
		for _, x := range s.order {
			if s.slab.live(x) {
				live = append(live, x)
			}
		}
		sort.Slice(live, func(a, b int) bool { return live[a].before(live[b]) })
		for _, x := range live {
			e := s.slab.at(x.i)
			out = append(out, Entry{
				ID:     append([]byte(nil), e.id()...),
				Data:   append([]byte(nil), e.data()...),
				Expiry: e.expiry,
			})
		}
		s.mu.Unlock()
	}
	return out
}

// Import stores entries with their absolute expiries, as Add would
// (duplicates refused, bounds kept); given Export's order, eviction order is
// preserved.
func (c *Cache) Import(entries []Entry) {
	for _, ce := range entries {
		// No clock: nothing is purged as expired on the way in.
		c.insert(math.MinInt64, entryBuf(ce.ID, ce.Data), len(ce.ID), ce.Expiry, 0)
	}
}
