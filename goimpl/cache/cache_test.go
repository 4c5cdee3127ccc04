// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

var t0 = time.UnixMicro(1_700_000_000_123_456)

func id(i int) []byte { return []byte(fmt.Sprintf("session-%04d", i)) }

func TestDefaultCacheSizeLimits(t *testing.T) {
	for _, n := range []int{0, 1, 63, 60001} {
		if _, err := NewDefault(n); err == nil {
			t.Errorf("size %d accepted", n)
		}
	}
	for _, n := range []int{64, 60000} {
		if _, err := NewDefault(n); err != nil {
			t.Errorf("size %d refused: %v", n, err)
		}
	}
}

func TestExpiryBoundary(t *testing.T) {
	c := mustDefault(t, 64)
	if !c.Add(t0, 1000, id(1), []byte("data")) {
		t.Fatal("add failed")
	}
	// Expiry = now truncated to the millisecond + 1000 ms.
	expiry := t0.Truncate(time.Millisecond).Add(time.Second)
	if !c.Have(expiry, id(1)) {
		t.Fatal("gone at the expiry instant")
	}
	if c.Have(expiry.Add(time.Microsecond), id(1)) {
		t.Fatal("still there 1µs after expiry")
	}
	if c.NumItems(expiry.Add(time.Microsecond)) != 0 {
		t.Fatal("expired entry counted")
	}
	// Timeout 0: stored, gone at the next operation (now has µs beyond the ms).
	if !c.Add(t0, 0, id(2), []byte("x")) {
		t.Fatal("timeout 0 refused")
	}
	if c.Have(t0, id(2)) {
		t.Fatal("timeout 0 entry readable")
	}
	// A 7-day lifetime is accepted and lasts.
	if !c.Add(t0, 604800000, id(3), []byte("y")) || !c.Have(t0.Add(6*24*time.Hour), id(3)) {
		t.Fatal("7-day entry")
	}
}

func TestDuplicateKeepsFirst(t *testing.T) {
	c := mustDefault(t, 64)
	c.Add(t0, 5000, id(1), []byte("first"))
	if c.Add(t0, 9000, id(1), []byte("second")) {
		t.Fatal("duplicate add succeeded")
	}
	buf := make([]byte, 10)
	if n := c.Get(t0, id(1), buf); n != 5 || string(buf[:n]) != "first" {
		t.Fatalf("got %q", buf[:n])
	}
	// After expiry the id can be added again.
	if !c.Add(t0.Add(6*time.Second), 1000, id(1), []byte("third")) {
		t.Fatal("re-add after expiry refused")
	}
}

func TestGetReportsFullLength(t *testing.T) {
	c := mustDefault(t, 64)
	data := bytes.Repeat([]byte("abc"), 100)
	c.Add(t0, 5000, id(1), data)
	small := make([]byte, 10)
	if n := c.Get(t0, id(1), small); n != 300 || !bytes.Equal(small, data[:10]) {
		t.Fatalf("n=%d small=%q", n, small)
	}
	if n := c.Get(t0, id(2), small); n != 0 {
		t.Fatalf("miss returned %d", n)
	}
}

// The original's verified behaviour: a 64-slot cache, the 65th add evicts
// the 2 (64/30) entries with the smallest timeouts.
func TestEvictionOrder(t *testing.T) {
	c := mustDefault(t, 64)
	for i := 0; i < 64; i++ {
		timeout := uint32(100000 + i)
		switch i {
		case 10:
			timeout = 5000
		case 40:
			timeout = 6000
		case 50:
			timeout = 6000 // equal expiry to 40: insertion order decides
		}
		if !c.Add(t0, timeout, id(i), []byte("d")) {
			t.Fatalf("add %d", i)
		}
	}
	if !c.Add(t0, 200000, id(64), []byte("d")) {
		t.Fatal("65th add")
	}
	for i := 0; i <= 64; i++ {
		want := i != 10 && i != 40
		if got := c.Have(t0, id(i)); got != want {
			t.Errorf("entry %d present=%v, want %v", i, got, want)
		}
	}
	if st := c.Stats(); st.Evictions != 2 || st.Items != 63 {
		t.Errorf("stats %+v", st)
	}
}

func TestRemove(t *testing.T) {
	c := mustDefault(t, 64)
	c.Add(t0, 5000, id(1), []byte("d"))
	if !c.Remove(t0, id(1)) || c.Remove(t0, id(1)) || c.Have(t0, id(1)) {
		t.Fatal("remove semantics")
	}
}

func TestByteBound(t *testing.T) {
	per := int64(len(id(0))+100) + EntryOverhead
	c := New(Config{MaxBytes: 10 * per, Shards: 1})
	for i := 0; i < 25; i++ {
		if !c.Add(t0, uint32(10000+i), id(i), make([]byte, 100)) {
			t.Fatalf("add %d", i)
		}
		if st := c.Stats(); st.Bytes > 10*per {
			t.Fatalf("bytes %d over bound %d", st.Bytes, 10*per)
		}
	}
	if n := c.NumItems(t0); n != 10 {
		t.Fatalf("%d items, want 10", n)
	}
	// The survivors are the ten latest to expire.
	for i := 15; i < 25; i++ {
		if !c.Have(t0, id(i)) {
			t.Errorf("entry %d evicted", i)
		}
	}
	// An entry bigger than the whole bound is refused, nothing evicted.
	if c.Add(t0, 1000, id(99), make([]byte, 20*per)) || c.NumItems(t0) != 10 {
		t.Fatal("oversized entry")
	}
}

func TestNoCountCapAndStats(t *testing.T) {
	c := New(Config{})
	for i := 0; i < 70000; i++ {
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, uint64(i))
		if !c.Add(t0, 60000, k, k) {
			t.Fatalf("add %d", i)
		}
	}
	if n := c.NumItems(t0); n != 70000 {
		t.Fatalf("%d items", n)
	}
	buf := make([]byte, 8)
	c.Get(t0, []byte("nothere!"), buf)
	c.Get(t0, make([]byte, 8), buf)
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Adds != 70000 || st.Items != 70000 {
		t.Fatalf("stats %+v", st)
	}
	if c.NumItems(t0.Add(61*time.Second)) != 0 || c.Stats().Expirations != 70000 || c.Stats().Bytes != 0 {
		t.Fatalf("after expiry: %+v", c.Stats())
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New(Config{MaxSessions: 5000})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := 0; i < 3000; i++ {
				k := []byte(fmt.Sprintf("g%d-%d", g, i))
				v := []byte(fmt.Sprintf("value-%d-%d", g, i))
				if !c.Add(t0, 60000, k, v) {
					t.Errorf("add %s", k)
					return
				}
				if n := c.Get(t0, k, buf); n != 0 && !bytes.Equal(buf[:n], v) {
					t.Errorf("wrong data for %s", k)
					return
				}
				if i%3 == 0 {
					c.Remove(t0, k)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := c.NumItems(t0); n > 5000 {
		t.Fatalf("%d items over the bound", n)
	}
}

func mustDefault(t testing.TB, n int) *Cache {
	t.Helper()
	c, err := NewDefault(n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The batch is max/30: 3000 slots → 100 entries go when the 3001st arrives,
// the ones closest to expiry; a smaller timeout added later goes first.
func TestEvictionBatch(t *testing.T) {
	const n = 3000
	c := mustDefault(t, n)
	for i := 0; i < n; i++ {
		// Entry i expires at 10000+i ms, except every 7th, which lives long.
		timeout := uint32(10000 + i)
		if i%7 == 0 {
			timeout = 500000
		}
		c.Add(t0, timeout, id(i), []byte("d"))
	}
	c.Add(t0, 1, id(n), []byte("soon")) // full: evicts 100, then stored
	if got := c.NumItems(t0); got != n-100+1 {
		t.Fatalf("%d items, want %d", got, n-100+1)
	}
	// The 100 evicted are the first 100 indexes that are not multiples of 7.
	evicted := 0
	for i := 0; evicted < 100; i++ {
		if i%7 == 0 {
			if !c.Have(t0, id(i)) {
				t.Fatalf("long-lived entry %d evicted", i)
			}
			continue
		}
		if c.Have(t0, id(i)) {
			t.Fatalf("entry %d survived, eviction #%d expected", i, evicted)
		}
		evicted++
	}
	// Fill up again: the next batch starts with the 1 ms entry, the newest.
	for i := n + 1; c.NumItems(t0) < n; i++ {
		c.Add(t0, 800000, id(i), []byte("d"))
	}
	if !c.Have(t0, id(n)) {
		t.Fatal("1 ms entry gone early")
	}
	c.Add(t0, 800000, id(2*n), []byte("d"))
	if c.Have(t0, id(n)) || !c.Have(t0, id(2*n)) {
		t.Fatal("second batch did not start with the 1 ms entry")
	}
	if st := c.Stats(); st.Evictions != 200 {
		t.Fatalf("%d evictions, want 200", st.Evictions)
	}
}

// A removed entry is not counted or evicted: eviction takes the next live one.
func TestEvictionSkipsRemoved(t *testing.T) {
	c := mustDefault(t, 64)
	for i := 0; i < 64; i++ {
		c.Add(t0, uint32(1000+i), id(i), []byte("d"))
	}
	c.Remove(t0, id(0))
	c.Add(t0, 5000, id(100), []byte("d")) // not full: nothing evicted
	if !c.Have(t0, id(1)) || c.Stats().Evictions != 0 {
		t.Fatal("evicted with room left")
	}
	c.Add(t0, 5000, id(101), []byte("d")) // full: entries 1 and 2 go
	if c.Have(t0, id(1)) || c.Have(t0, id(2)) || !c.Have(t0, id(3)) {
		t.Fatal("wrong entries evicted")
	}
}

// Reads never extend a lifetime or protect an entry from eviction.
func TestReadsDoNotExtend(t *testing.T) {
	c := mustDefault(t, 64)
	for i := 0; i < 64; i++ {
		c.Add(t0, uint32(1000+i), id(i), []byte("d"))
	}
	buf := make([]byte, 8)
	for k := 0; k < 10; k++ {
		c.Get(t0, id(0), buf)
		c.Have(t0, id(1))
	}
	c.Add(t0, 9000, id(64), []byte("d"))
	if c.Have(t0, id(0)) || c.Have(t0, id(1)) {
		t.Fatal("read entries protected from eviction")
	}
	if c.Have(t0.Truncate(time.Millisecond).Add(1002*time.Millisecond+time.Microsecond), id(2)) {
		t.Fatal("read entry outlived its expiry")
	}
}

// Removing long-lived entries leaves stale slots in the expiry order; they
// must not accumulate.
func TestRemoveChurnBounded(t *testing.T) {
	c := New(Config{Shards: 1})
	for i := 0; i < 50; i++ {
		c.Add(t0, 600000, id(i), []byte("keep"))
	}
	for i := 0; i < 20000; i++ {
		k := id(1000 + i)
		if !c.Add(t0, 604800000, k, []byte("churn")) || !c.Remove(t0, k) {
			t.Fatalf("churn %d", i)
		}
	}
	s := &c.shards[0]
	if len(s.order) > 2*1024+100 || s.dead > len(s.order) {
		t.Fatalf("expiry order holds %d slots (%d stale) for %d entries", len(s.order), s.dead, len(s.index))
	}
	if n := c.NumItems(t0); n != 50 {
		t.Fatalf("%d items", n)
	}
	// Order still right after compaction: the keepers expire, nothing else.
	if n := c.NumItems(t0.Add(601 * time.Second)); n != 0 {
		t.Fatalf("%d items after expiry", n)
	}
	if st := c.Stats(); st.Expirations != 50 || st.Removes != 20000 || st.Bytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShardSizing(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want int
	}{
		{"unbounded", Config{}, 16},
		{"explicit", Config{Shards: 3}, 3},
		{"dc_server default 512", Config{MaxSessions: 512}, 8},
		{"tiny count", Config{MaxSessions: 100}, 1},
		{"tiny bytes", Config{MaxBytes: 1 << 20}, 4},
		{"more shards than sessions", Config{MaxSessions: 2, Shards: 8}, 2},
	}
	for _, cs := range cases {
		c := New(cs.cfg)
		if got := len(c.shards); got != cs.want {
			t.Errorf("%s: %d shards, want %d", cs.name, got, cs.want)
		}
	}
}

// Every entry the sharded cache keeps is counted once; bounds hold overall.
func TestShardedBounds(t *testing.T) {
	c := New(Config{MaxSessions: 10000, MaxBytes: 4 << 20})
	data := make([]byte, 300)
	for i := 0; i < 50000; i++ {
		c.Add(t0, uint32(60000+i), id(i), data)
	}
	st := c.Stats()
	if st.Items > 10000 || st.Bytes > 4<<20 || int64(c.NumItems(t0)) != st.Items {
		t.Fatalf("stats %+v, NumItems %d", st, c.NumItems(t0))
	}
	if st.Adds != 50000 || st.Adds-st.Evictions != uint64(st.Items) {
		t.Fatalf("adds %d evictions %d items %d", st.Adds, st.Evictions, st.Items)
	}
	// Survivors are recent: the first 10000 ids are all gone.
	for i := 0; i < 10000; i += 97 {
		if c.Have(t0, id(i)) {
			t.Fatalf("old entry %d kept", i)
		}
	}
}

// Many goroutines on overlapping ids: data read back is always what one of
// the writers stored, and the counters add up at the end.
func TestConcurrentHammer(t *testing.T) {
	c := New(Config{MaxSessions: 2000})
	var wg sync.WaitGroup
	var hits sync.Map
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 64)
			n := 0
			for i := 0; i < 4000; i++ {
				k := id(i % 3000)
				now := t0.Add(time.Duration(i) * time.Millisecond)
				switch (i + g) % 4 {
				case 0:
					c.Add(now, uint32(1000+g), k, append([]byte("v:"), k...))
				case 1:
					if m := c.Get(now, k, buf); m != 0 {
						if !bytes.Equal(buf[:m], append([]byte("v:"), k...)) {
							t.Errorf("%s read %q", k, buf[:m])
							return
						}
						n++
					}
				case 2:
					c.Have(now, k)
				case 3:
					if i%8 == 3 {
						c.Remove(now, k)
					}
				}
			}
			hits.Store(g, n)
		}(g)
	}
	wg.Wait()
	st := c.Stats()
	var got uint64
	hits.Range(func(_, v any) bool { got += uint64(v.(int)); return true })
	if st.Hits != got {
		t.Errorf("Stats.Hits %d, goroutines saw %d", st.Hits, got)
	}
	live := uint64(c.NumItems(t0.Add(time.Hour)))
	st = c.Stats()
	if live != 0 || st.Adds != st.Removes+st.Evictions+st.Expirations || st.Items != 0 || st.Bytes != 0 {
		t.Errorf("counters do not add up: %+v", st)
	}
}

// The longest lifetime the protocol allows ends exactly 7 days after the
// add's millisecond.
func TestSevenDayBoundary(t *testing.T) {
	c := mustDefault(t, 64)
	if !c.Add(t0, 604800000, id(1), []byte("d")) {
		t.Fatal("7-day add refused")
	}
	expiry := t0.Truncate(time.Millisecond).Add(7 * 24 * time.Hour)
	if !c.Have(expiry, id(1)) || c.Have(expiry.Add(time.Microsecond), id(1)) {
		t.Fatal("7-day entry: wrong end")
	}
}

// Now may go backwards (the caller's clock): entries stay live until the
// clock passes their expiry again, and order is kept.
func TestClockStepBack(t *testing.T) {
	c := mustDefault(t, 64)
	c.Add(t0, 1000, id(1), []byte("d"))
	back := t0.Add(-time.Hour)
	if !c.Have(back, id(1)) || !c.Add(back, 1000, id(2), []byte("d")) {
		t.Fatal("clock step back")
	}
	// id(2) now expires an hour before id(1).
	if n := c.NumItems(back.Add(2 * time.Second)); n != 1 || !c.Have(back.Add(2*time.Second), id(1)) {
		t.Fatalf("%d items", n)
	}
}

// Evicted sessions are released (the original leaked them, E-19): adding
// 200 times a full cache's worth of 16 KB sessions keeps the heap at about
// one cache's worth.
func TestEvictionFreesMemory(t *testing.T) {
	c := mustDefault(t, 64)
	data := make([]byte, 16<<10)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for i := 0; i < 64; i++ {
		c.Add(t0, uint32(60000+i), id(i), data)
	}
	before := heap()
	for i := 64; i < 64*200; i++ {
		c.Add(t0, uint32(60000+i), id(i), data)
	}
	after := heap()
	if after > before+4<<20 { // 200 cache loads leaked would be 200 MB
		t.Fatalf("heap grew from %d to %d bytes", before, after)
	}
	if st := c.Stats(); st.Items > 64 || st.Evictions < 64*199 {
		t.Fatalf("stats %+v", st)
	}
	runtime.KeepAlive(c)
}

// After a peak the shard's slab, index and expiry order shrink back, and
// the survivors are intact and still expire in order.
func TestShrinkAfterPeak(t *testing.T) {
	c := New(Config{Shards: 1})
	s := &c.shards[0]
	for i := 0; i < 20000; i++ {
		timeout := uint32(1000)
		if i%100 == 0 {
			timeout = uint32(500000 - i) // 200 survivors, later ones expire first
		}
		c.Add(t0, timeout, id(i), []byte(fmt.Sprintf("data-%d", i)))
	}
	for i := 1; i < 20000; i += 100 {
		c.Remove(t0, id(i)) // stale slots for shrink to skip
	}
	peak := cap(s.slab.entries)
	if n := c.NumItems(t0.Add(2 * time.Second)); n != 200 {
		t.Fatalf("%d items after the peak", n)
	}
	if cap(s.slab.entries) > 400 || cap(s.order) > 400 || len(s.order) != 200 || len(s.slab.free) != 0 {
		t.Fatalf("slab %d (peak %d), order %d/%d, free %d", cap(s.slab.entries), peak, len(s.order), cap(s.order), len(s.slab.free))
	}
	buf := make([]byte, 16)
	for i := 0; i < 20000; i += 100 {
		if n := c.Get(t0, id(i), buf); string(buf[:n]) != fmt.Sprintf("data-%d", i) {
			t.Fatalf("entry %d reads %q", i, buf[:n])
		}
	}
	// Expiry order survived the rebuild: entry 19900 expires first.
	at := t0.Truncate(time.Millisecond).Add((500000 - 19900) * time.Millisecond)
	if c.Have(at.Add(time.Microsecond), id(19900)) || !c.Have(at.Add(time.Microsecond), id(19800)) {
		t.Fatal("order after shrink")
	}
	if st := c.Stats(); st.Items != 199 || st.Bytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

// -sessions N keeps N: with 16 shards nothing is dropped until N entries
// are stored, and then the entries closest to expiry across the whole
// cache go, a batch of N/30 (issue 10 item 3; per-shard bounds of N/16 each
// kept 992 of 1000 and 98336 of 100000).
func TestExactCapacityGlobalOrder(t *testing.T) {
	for _, n := range []int{1000, 100000} {
		c := New(Config{MaxSessions: n, Shards: 16})
		if len(c.shards) != 16 {
			t.Fatalf("%d shards", len(c.shards))
		}
		// Expiries all distinct, in a shuffled order across the shards.
		ttl := func(i int) uint32 { return uint32(600000 + (i*7919)%n) }
		for i := 0; i < n; i++ {
			if !c.Add(t0, ttl(i), id(i), []byte("d")) {
				t.Fatalf("add %d refused", i)
			}
		}
		if got := c.NumItems(t0); got != n {
			t.Fatalf("-sessions %d keeps %d", n, got)
		}
		if ev := c.Stats().Evictions; ev != 0 {
			t.Fatalf("-sessions %d: %d evicted before full", n, ev)
		}
		// One more: the n/30 entries closest to expiry go, whichever
		// shard holds them, and nothing else.
		c.Add(t0, uint32(600000+n), id(n), []byte("d"))
		batch := n / 30
		if got := c.NumItems(t0); got != n+1-batch {
			t.Fatalf("after the add into a full cache: %d, want %d", got, n+1-batch)
		}
		for i := 0; i < n; i++ {
			soonest := int(ttl(i)-600000) < batch
			if c.Have(t0, id(i)) == soonest {
				t.Fatalf("entry %d (ttl rank %d): kept %v, want %v", i, ttl(i)-600000, !soonest, !soonest)
			}
		}
	}
}

// The byte bound is the whole cache's too: entries fill it across shards
// and the soonest to expire anywhere make room.
func TestByteBoundGlobal(t *testing.T) {
	per := int64(len(id(0))+100) + EntryOverhead
	c := New(Config{MaxBytes: 1000 * per, Shards: 16})
	for i := 0; i < 1000; i++ {
		c.Add(t0, uint32(10000+i), id(i), make([]byte, 100))
	}
	if got := c.NumItems(t0); got != 1000 {
		t.Fatalf("%d entries of a 1000-entry byte bound", got)
	}
	for i := 1000; i < 1100; i++ {
		c.Add(t0, uint32(10000+i), id(i), make([]byte, 100))
	}
	if got, st := c.NumItems(t0), c.Stats(); got != 1000 || st.Bytes > 1000*per {
		t.Fatalf("%d entries, %d bytes", got, st.Bytes)
	}
	for i := 0; i < 100; i++ {
		if c.Have(t0, id(i)) || !c.Have(t0, id(i+1000)) {
			t.Fatalf("entry %d: wrong one evicted", i)
		}
	}
}

// An entry's block is charged at its capacity: building it without
// zeroing must give the size class of id+data, as a cleared block does.
func TestEntryBufSizeClass(t *testing.T) {
	for _, idLen := range []int{1, 10, 33, 64} {
		for dataLen := 1; dataLen <= 33000; dataLen += 1 + dataLen/7 {
			id, data := bytes.Repeat([]byte{'i'}, idLen), bytes.Repeat([]byte{'d'}, dataLen)
			buf := entryBuf(id, data)
			want := cap(append([]byte(nil), make([]byte, idLen+dataLen)...))
			if cap(buf) != want || !bytes.Equal(buf, append(id[:idLen:idLen], data...)) {
				t.Fatalf("id %d, data %d: cap %d, want %d (or the bytes differ)", idLen, dataLen, cap(buf), want)
			}
		}
	}
}

// An ADD of a live id is refused before anything is copied.
func TestAddDuplicateCopiesNothing(t *testing.T) {
	c := New(Config{MaxSessions: 100})
	id, data := []byte("session"), bytes.Repeat([]byte{'d'}, 4000)
	if !c.Add(t0, 60000, id, data) {
		t.Fatal("first add refused")
	}
	if n := testing.AllocsPerRun(100, func() {
		if c.Add(t0, 60000, id, data) {
			t.Fatal("duplicate added")
		}
	}); n != 0 {
		t.Fatalf("a refused ADD allocates %v times", n)
	}
	if st := c.Stats(); st.AddsRefused != 101 {
		t.Fatalf("%d adds refused, want 101", st.AddsRefused)
	}
}

// The default clock reads the wall clock time.Now reads, to the µs.
func TestWallClock(t *testing.T) {
	for i := 0; i < 100; i++ {
		before := time.Now().UnixMicro()
		got := wallClock().UnixMicro()
		after := time.Now().UnixMicro()
		if got < before-1 || got > after+1 {
			t.Fatalf("wall clock %d, time.Now between %d and %d", got, before, after)
		}
	}
}
