// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"fmt"
	"sort"
	"testing"
	"unsafe"
)

// Freeze then Adopt into a fresh cache keeps every entry, its data, its
// expiry to the microsecond and the eviction order, as Export/Import do,
// without copying an entry's bytes; Freeze holds every shard until thaw.
func TestFreezeAdopt(t *testing.T) {
	src := New(Config{MaxSessions: 256, Shards: 4})
	for i := 0; i < 200; i++ {
		src.Add(t0, uint32(10000+(i*37)%64*10), []byte(fmt.Sprintf("id-%03d", i)), []byte(fmt.Sprintf("data-%03d", i)))
	}
	src.Remove(t0, []byte("id-005")) // a free slot in a slab
	want := src.Export()
	img, thaw := src.Freeze()
	for i := range src.shards {
		if src.shards[i].mu.TryLock() {
			t.Fatalf("shard %d not locked by Freeze", i)
		}
	}
	dst := New(Config{MaxSessions: 256, Shards: 1})
	if !dst.Adopt(img) {
		t.Fatal("Adopt refused an image of this build")
	}
	thaw()
	for i := range src.shards {
		if !src.shards[i].mu.TryLock() {
			t.Fatalf("shard %d still locked after thaw", i)
		}
		src.shards[i].mu.Unlock()
	}
	if n := dst.NumItems(t0); n != 199 {
		t.Fatalf("adopted %d entries, want 199", n)
	}
	// Same entries and expiries, in the whole cache's eviction order.
	got := dst.Export()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	sortEntries(want)
	for i := range want {
		if !bytes.Equal(want[i].ID, got[i].ID) || !bytes.Equal(want[i].Data, got[i].Data) || want[i].Expiry != got[i].Expiry {
			t.Fatalf("entry %d: %s/%d, want %s/%d", i, got[i].ID, got[i].Expiry, want[i].ID, want[i].Expiry)
		}
	}
	// The blocks are the frozen cache's own, not copies.
	e := dst.shards[0].slab.at(dst.shards[0].index["id-007"])
	s := src.shard([]byte("id-007"))
	if unsafe.SliceData(e.buf) != unsafe.SliceData(s.slab.at(s.index["id-007"]).buf) {
		t.Fatal("Adopt copied an entry's bytes")
	}
	// Evicting from the adopted cache follows the source's order.
	for i := 0; i < 60; i++ {
		dst.Add(t0, 1<<20, []byte(fmt.Sprintf("fill-%d", i)), []byte("x"))
	}
	after := dst.Export()
	if dst.NumItems(t0) > 256 {
		t.Fatalf("bound not kept: %d", dst.NumItems(t0))
	}
	dropped := len(want) + 60 - len(after)
	for i := 0; i < dropped; i++ {
		if dst.Have(t0, want[i].ID) {
			t.Fatalf("entry %d (%s) kept while later ones were evicted", i, want[i].ID)
		}
	}
	if dropped == 0 || !dst.Have(t0, want[dropped].ID) {
		t.Fatalf("eviction dropped %d entries, not the soonest to expire", dropped)
	}
}

// sortEntries puts entries of several shards in the whole cache's order:
// by expiry, ties in insertion order (which the ids of the test follow).
func sortEntries(es []Entry) {
	sort.Slice(es, func(a, b int) bool {
		return es[a].Expiry < es[b].Expiry || (es[a].Expiry == es[b].Expiry && bytes.Compare(es[a].ID, es[b].ID) < 0)
	})
}

// An image of another entry layout, or with an entry out of shape, is
// refused and nothing is stored.
func TestAdoptRefuses(t *testing.T) {
	src := New(Config{MaxSessions: 64, Shards: 1})
	src.Add(t0, 1000, []byte("a"), []byte("b"))
	img, thaw := src.Freeze()
	defer thaw()
	other := img
	other.Layout ^= 1
	dst := New(Config{MaxSessions: 64, Shards: 1})
	if dst.Adopt(other) || dst.NumItems(t0) != 0 {
		t.Fatal("an image of another layout was adopted")
	}
	bad := []entry{{expiry: 1, seq: 1, buf: []byte("ab"), idLen: 3}}
	if dst.Adopt(Image{Layout: img.Layout, Shards: []ShardImage{{unsafe.Pointer(&bad[0]), 1}}}) || dst.NumItems(t0) != 0 {
		t.Fatal("an entry whose id is longer than its block was adopted")
	}
	if !dst.Adopt(img) || dst.NumItems(t0) != 1 {
		t.Fatal("the good image was refused")
	}
}
