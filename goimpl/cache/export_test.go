// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"fmt"
	"testing"
)

// Export then Import into a fresh cache keeps every entry, its data, its
// expiry to the microsecond, and the eviction order.
func TestExportImport(t *testing.T) {
	src := New(Config{MaxSessions: 64, Shards: 1})
	for i := 0; i < 64; i++ {
		src.Add(t0, uint32(10000+(i*37)%64*10), []byte(fmt.Sprintf("id-%02d", i)), []byte(fmt.Sprintf("data-%02d", i)))
	}
	src.Remove(t0, []byte("id-05"))
	ex := src.Export()
	if len(ex) != 63 {
		t.Fatalf("exported %d entries, want 63", len(ex))
	}
	for i := 1; i < len(ex); i++ {
		if ex[i].Expiry < ex[i-1].Expiry {
			t.Fatal("export not in expiry order")
		}
	}
	dst := New(Config{MaxSessions: 64, Shards: 1})
	dst.Import(ex)
	if dst.NumItems(t0) != 63 {
		t.Fatalf("imported %d", dst.NumItems(t0))
	}
	buf := make([]byte, 16)
	for i := 0; i < 64; i++ {
		id := []byte(fmt.Sprintf("id-%02d", i))
		n := dst.Get(t0, id, buf)
		if i == 5 {
			if n != 0 {
				t.Fatal("removed entry came back")
			}
			continue
		}
		if !bytes.Equal(buf[:n], []byte(fmt.Sprintf("data-%02d", i))) {
			t.Fatalf("entry %d: %q", i, buf[:n])
		}
	}
	// Same entries, same expiries to the microsecond, same order.
	again := dst.Export()
	for i := range ex {
		if !bytes.Equal(ex[i].ID, again[i].ID) || !bytes.Equal(ex[i].Data, again[i].Data) || ex[i].Expiry != again[i].Expiry {
			t.Fatalf("entry %d changed in the round trip", i)
		}
	}
	// Both caches evict the same entries when full.
	src.Add(t0, 1<<20, []byte("fill-a"), []byte("x"))
	dst.Add(t0, 1<<20, []byte("fill-a"), []byte("x"))
	src.Add(t0, 1<<20, []byte("fill-b"), []byte("x"))
	dst.Add(t0, 1<<20, []byte("fill-b"), []byte("x"))
	a, b := src.Export(), dst.Export()
	if len(a) != len(b) {
		t.Fatalf("after eviction %d vs %d entries", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].ID, b[i].ID) || a[i].Expiry != b[i].Expiry {
			t.Fatalf("entry %d differs after eviction: %s vs %s", i, a[i].ID, b[i].ID)
		}
	}
}
