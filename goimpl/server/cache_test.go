package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.UnixMicro(1_700_000_000_123_456)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
func id(i int) []byte          { return []byte(fmt.Sprintf("session-%04d", i)) }

func TestDefaultCacheSizeLimits(t *testing.T) {
	for _, n := range []int{0, 1, 63, 60001} {
		if _, err := NewDefaultCache(n); err == nil {
			t.Errorf("size %d accepted", n)
		}
	}
	for _, n := range []int{64, 60000} {
		if _, err := NewDefaultCache(n); err != nil {
			t.Errorf("size %d refused: %v", n, err)
		}
	}
}

func TestExpiryBoundary(t *testing.T) {
	c, _ := NewDefaultCache(64)
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
	c, _ := NewDefaultCache(64)
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
	c, _ := NewDefaultCache(64)
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
	c, _ := NewDefaultCache(64)
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
	c, _ := NewDefaultCache(64)
	c.Add(t0, 5000, id(1), []byte("d"))
	if !c.Remove(t0, id(1)) || c.Remove(t0, id(1)) || c.Have(t0, id(1)) {
		t.Fatal("remove semantics")
	}
}

func TestByteBound(t *testing.T) {
	per := int64(len(id(0))+100) + EntryOverhead
	c := NewCache(Config{MaxBytes: 10 * per, Shards: 1})
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

func TestMinLifetime(t *testing.T) {
	c := NewCache(Config{MinLifetime: 300 * time.Second})
	c.Add(t0, 700, id(1), []byte("d"))
	if !c.Have(t0.Add(299*time.Second), id(1)) {
		t.Fatal("floor not applied")
	}
	c.Add(t0, 600000, id(2), []byte("d"))
	if !c.Have(t0.Add(500*time.Second), id(2)) {
		t.Fatal("longer lifetime shortened")
	}
}

func TestNoCountCapAndStats(t *testing.T) {
	c := NewCache(Config{})
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
	c := NewCache(Config{MaxSessions: 5000})
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
