// SPDX-License-Identifier: Apache-2.0

package nal

/*
#include <stdlib.h>
#include <stdint.h>
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// References are what the front keeps for an engine object: C may not hold
// Go pointers, so each object gets a slot in a table here, and its
// reference is the address of a 4-byte C cell holding the slot's index
// (cells come from C.malloc, refPage of them at a time, and are reused with
// their slots). Looking a reference up reads its cell and one slot, without
// a lock (every dce_* call does it); making and dropping one takes the
// table's lock, with no cgo call and one small allocation.
const (
	refPageBits = 10
	refPage     = 1 << refPageBits
)

type refBox struct {
	v   any
	ref unsafe.Pointer
	// home is the object the box is part of (saveIn), for its reuse
	// once the reference is dropped; nil for a box of its own.
	home any
}

type refSlots [refPage]atomic.Pointer[refBox]

var refs struct {
	mu    sync.Mutex
	pages atomic.Pointer[[]*refSlots] // replaced (copied) when it grows
	cells []unsafe.Pointer            // per page: its C cells
	free  []uint32
	next  uint32
}

func refCell(idx uint32) unsafe.Pointer {
	return unsafe.Add(refs.cells[idx>>refPageBits], uintptr(idx&(refPage-1))*4)
}

func saveRef(v any) unsafe.Pointer {
	return saveIn(new(refBox), v, nil)
}

// saveIn is saveRef with the box given: an object (home) may carry its own,
// and then its reference costs no allocation of its own (boxOf finds home).
func saveIn(b *refBox, v, home any) unsafe.Pointer {
	if v == nil {
		return nil
	}
	refs.mu.Lock()
	defer refs.mu.Unlock()
	var idx uint32
	if n := len(refs.free); n > 0 {
		idx = refs.free[n-1]
		refs.free = refs.free[:n-1]
	} else {
		idx = refs.next
		if idx&(refPage-1) == 0 {
			cells := C.malloc(C.size_t(refPage * 4))
			if cells == nil {
				return nil
			}
			cs := unsafe.Slice((*uint32)(cells), refPage)
			for i := range cs {
				cs[i] = idx + uint32(i)
			}
			var old []*refSlots
			if p := refs.pages.Load(); p != nil {
				old = *p
			}
			grown := append(append(make([]*refSlots, 0, len(old)+1), old...), new(refSlots))
			refs.cells = append(refs.cells, cells)
			refs.pages.Store(&grown)
		}
		refs.next++
	}
	r := refCell(idx)
	b.v, b.ref, b.home = v, r, home
	(*refs.pages.Load())[idx>>refPageBits][idx&(refPage-1)].Store(b)
	return r
}

func slotOf(r unsafe.Pointer) *atomic.Pointer[refBox] {
	if r == nil {
		return nil
	}
	p := refs.pages.Load()
	if p == nil {
		return nil
	}
	idx := *(*uint32)(r)
	if int(idx>>refPageBits) >= len(*p) {
		return nil
	}
	return &(*p)[idx>>refPageBits][idx&(refPage-1)]
}

func restoreRef(r unsafe.Pointer) any {
	if s := slotOf(r); s != nil {
		if b := s.Load(); b != nil && b.ref == r {
			return b.v
		}
	}
	return nil
}

// Unref drops a reference made by Save (nil, or one dropped already, is ignored).
func Unref(r unsafe.Pointer) {
	if r == nil {
		return
	}
	refs.mu.Lock()
	defer refs.mu.Unlock()
	if s := slotOf(r); s != nil {
		if b := s.Load(); b != nil && b.ref == r {
			s.Store(nil)
			refs.free = append(refs.free, *(*uint32)(r))
		}
	}
}

// boxOf is the home of r's box (saveIn), nil if none.
func boxOf(r unsafe.Pointer) any {
	if s := slotOf(r); s != nil {
		if b := s.Load(); b != nil && b.ref == r {
			return b.home
		}
	}
	return nil
}
