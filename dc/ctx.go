package dc

/*
#include <stdlib.h>
*/
import "C"

import (
	"unsafe"

	pointer "github.com/mattn/go-pointer"

	"github.com/distcache-go/distcache/goimpl/client"
)

// maxLen bounds every length the C caller passes (DC_MAX_TOTAL_DATA); larger
// values are rejected before a Go slice is made over the caller's memory.
const maxLen = 32768

// cbytes views n bytes of C memory at p as a slice (nil for n == 0).
func cbytes(p *C.uchar, n C.uint) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

func ctxOf(ref unsafe.Pointer) ctxImpl {
	c, _ := pointer.Restore(ref).(ctxImpl)
	return c
}

// The front validated the target and the persistent connect already (it runs
// DC_CTX_new without the engine); the engine context is made lazily, once per
// process generation, so it never connects early: PERSISTENT gets LATE.
//
//export dce_DC_CTX_new
func dce_DC_CTX_new(target *C.char, flags C.uint) unsafe.Pointer {
	if target == nil {
		return nil
	}
	f := uint32(flags)
	if f&client.FlagPersistent != 0 {
		f |= client.FlagLate
	}
	c := newCtx(C.GoString(target), f)
	if c == nil {
		return nil
	}
	return pointer.Save(c)
}

//export dce_DC_CTX_free
func dce_DC_CTX_free(ref unsafe.Pointer) {
	if c := ctxOf(ref); c != nil {
		c.Close()
		pointer.Unref(ref)
	}
}

//export dce_DC_CTX_add_session
func dce_DC_CTX_add_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, data *C.uchar, dataLen C.uint, timeout C.ulong) C.int {
	c := ctxOf(ref)
	if c == nil || id == nil || data == nil || idLen == 0 || dataLen == 0 || idLen > maxLen || dataLen > maxLen {
		return 0
	}
	if c.AddSession(cbytes(id, idLen), cbytes(data, dataLen), uint64(timeout)) {
		return 1
	}
	return 0
}

//export dce_DC_CTX_remove_session
func dce_DC_CTX_remove_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint) C.int {
	c := ctxOf(ref)
	if c == nil || id == nil || idLen == 0 || idLen > maxLen {
		return 0
	}
	if c.RemoveSession(cbytes(id, idLen)) {
		return 1
	}
	return 0
}

func getLike(ref unsafe.Pointer, id *C.uchar, idLen C.uint, buf *C.uchar, size C.uint, used *C.uint, reget bool) C.int {
	c := ctxOf(ref)
	if c == nil || id == nil || idLen == 0 || idLen > maxLen {
		return 0
	}
	dst := cbytes(buf, size)
	var n int
	var ok bool
	if reget {
		n, ok = c.RegetSession(cbytes(id, idLen), dst)
	} else {
		n, ok = c.GetSession(cbytes(id, idLen), dst)
	}
	if !ok {
		return 0
	}
	if used != nil {
		*used = C.uint(n)
	}
	return 1
}

//export dce_DC_CTX_get_session
func dce_DC_CTX_get_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, buf *C.uchar, size C.uint, used *C.uint) C.int {
	return getLike(ref, id, idLen, buf, size, used, false)
}

//export dce_DC_CTX_reget_session
func dce_DC_CTX_reget_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, buf *C.uchar, size C.uint, used *C.uint) C.int {
	return getLike(ref, id, idLen, buf, size, used, true)
}

//export dce_DC_CTX_has_session
func dce_DC_CTX_has_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint) C.int {
	c := ctxOf(ref)
	if c == nil || id == nil || idLen == 0 || idLen > maxLen {
		return -1
	}
	return C.int(c.HasSession(cbytes(id, idLen)))
}
