// SPDX-License-Identifier: Apache-2.0

package nal

/*
#include <stdlib.h>
*/
import "C"

import (
	"unsafe"

	gonal "github.com/distcache-go/distcache/goimpl/nal"
)

func init() {
	gonal.SetAllocator(func(n int) []byte {
		if n <= 0 {
			return nil
		}
		p := C.malloc(C.size_t(n))
		if p == nil {
			return nil
		}
		return unsafe.Slice((*byte)(p), n)
	}, cfree)
}

// cfree releases storage from C malloc (Buffer storage).
func cfree(b []byte) {
	if cap(b) > 0 {
		C.free(unsafe.Pointer(unsafe.SliceData(b)))
	}
}
