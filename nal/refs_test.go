// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"sync"
	"testing"
	"unsafe"
)

func TestRefs(t *testing.T) {
	const n = 3*refPage + 17 // more than one page of cells
	vals := make([]*int, n)
	rs := make([]unsafe.Pointer, n)
	seen := map[unsafe.Pointer]bool{}
	for i := range vals {
		v := i
		vals[i] = &v
		rs[i] = Save(vals[i])
		if rs[i] == nil || seen[rs[i]] {
			t.Fatalf("Save %d: reference %p nil or handed out twice", i, rs[i])
		}
		seen[rs[i]] = true
	}
	for i, r := range rs {
		if got, _ := Restore(r).(*int); got != vals[i] {
			t.Fatalf("Restore %d: got %v, want %v", i, got, vals[i])
		}
	}
	for i := 0; i < n; i += 2 {
		Unref(rs[i])
		Unref(rs[i]) // twice: ignored
	}
	for i, r := range rs {
		got := Restore(r)
		if i%2 == 0 && got != nil {
			t.Fatalf("Restore %d after Unref: got %v", i, got)
		}
		if i%2 == 1 && got.(*int) != vals[i] {
			t.Fatalf("Restore %d: a neighbour's Unref lost it", i)
		}
	}
	if Save(nil) != nil || Restore(nil) != nil {
		t.Fatal("nil must map to nil")
	}
	for i := 1; i < n; i += 2 {
		Unref(rs[i])
	}
}

// Lookups run without the table's lock while other goroutines make and drop
// references (and the table grows): run with -race.
func TestRefsConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2*refPage; i++ {
				v := new(int)
				*v = i
				r := Save(v)
				if got, _ := Restore(r).(*int); got != v {
					t.Errorf("Restore: got %v, want %v", got, v)
					return
				}
				if i%3 != 0 {
					Unref(r)
				}
			}
		}()
	}
	wg.Wait()
}

// A freed address or buffer waits for reuse with its reference (spares); a
// second free of that reference must not put it on the list twice, or two
// new objects would share it.
func TestSpareFreedTwice(t *testing.T) {
	for _, k := range []struct {
		name      string
		new       func() unsafe.Pointer
		free      func(unsafe.Pointer)
		different func(a, b unsafe.Pointer) bool
	}{
		{"address", dce_NAL_ADDRESS_new, dce_NAL_ADDRESS_free,
			func(a, b unsafe.Pointer) bool { return addrOf(a) != addrOf(b) }},
		{"buffer", dce_NAL_BUFFER_new, dce_NAL_BUFFER_free,
			func(a, b unsafe.Pointer) bool { return bufOf(a) != bufOf(b) }},
	} {
		r := k.new()
		k.free(r)
		k.free(r)
		a, b := k.new(), k.new()
		if a == b || !k.different(a, b) {
			t.Errorf("%s: after a second free, two new ones share an object (refs %p %p)", k.name, a, b)
		}
		k.free(a)
		k.free(b)
	}
}
