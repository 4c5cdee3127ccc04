// SPDX-License-Identifier: Apache-2.0

package dc

/*
#include <stdlib.h>
#include <string.h>
*/
import "C"

import (
	"unsafe"

	"github.com/distcache-go/distcache/goimpl/plug"
	capinal "github.com/distcache-go/distcache/nal"
)

// cPlug is the engine object behind a DC_PLUG: the plug, the reference of its
// connection, and the C memory that DC_PLUG_read's payload pointer refers to
// (valid until consume/free, as C expects).
type cPlug struct {
	p    *plug.Plug
	conn unsafe.Pointer
	buf  unsafe.Pointer
	cap  int
}

func plugOf(r unsafe.Pointer) *cPlug {
	p, _ := capinal.Restore(r).(*cPlug)
	return p
}

func (cp *cPlug) plug() *plug.Plug {
	if cp == nil {
		return nil
	}
	return cp.p
}

//export dce_DC_PLUG_new
func dce_DC_PLUG_new(conn unsafe.Pointer, flags C.uint) (ret unsafe.Pointer) {
	defer capinal.Rescue(&ret, nil)
	w := capinal.ConnOf(conn)
	if w == nil {
		return nil
	}
	p := plug.New(w.C, uint32(flags))
	if p == nil {
		return nil
	}
	return capinal.Save(&cPlug{p: p, conn: conn})
}

//export dce_DC_PLUG_free
func dce_DC_PLUG_free(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	cp := plugOf(r)
	if cp == nil {
		return 0
	}
	nofree := cp.p.Flags()&plug.FlagNoFreeConn != 0
	cp.p.Free()
	if !nofree {
		capinal.DropConn(cp.conn)
	}
	if cp.buf != nil {
		C.free(cp.buf)
	}
	capinal.Unref(r)
	return 1
}

//export dce_DC_PLUG_to_select
func dce_DC_PLUG_to_select(r, sel unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	return b2i(plugOf(r).plug().ToSelect(capinal.SelOf(sel)))
}

//export dce_DC_PLUG_from_select
func dce_DC_PLUG_from_select(r unsafe.Pointer) {
	defer capinal.RescueVoid()
	plugOf(r).plug().FromSelect()
}

//export dce_DC_PLUG_io
func dce_DC_PLUG_io(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	return b2i(plugOf(r).plug().IO())
}

//export dce_DC_PLUG_read
func dce_DC_PLUG_read(r unsafe.Pointer, resume C.int, uid *C.ulong, cmd *C.int, data **C.uchar, n *C.uint) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	cp := plugOf(r)
	if cp == nil {
		return 0
	}
	u, c, payload, ok := cp.p.Read(resume != 0)
	if !ok {
		return 0
	}
	if need := len(payload) + 1; need > cp.cap {
		nb := C.realloc(cp.buf, C.size_t(need))
		if nb == nil {
			return 0
		}
		cp.buf, cp.cap = nb, need
	}
	if len(payload) > 0 {
		C.memcpy(cp.buf, unsafe.Pointer(unsafe.SliceData(payload)), C.size_t(len(payload)))
	}
	if uid != nil {
		*uid = C.ulong(u)
	}
	if cmd != nil {
		*cmd = C.int(c)
	}
	if data != nil {
		*data = (*C.uchar)(cp.buf)
	}
	if n != nil {
		*n = C.uint(len(payload))
	}
	return 1
}

//export dce_DC_PLUG_consume
func dce_DC_PLUG_consume(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	return b2i(plugOf(r).plug().Consume())
}

//export dce_DC_PLUG_write
func dce_DC_PLUG_write(r unsafe.Pointer, resume C.int, uid C.ulong, cmd C.int, data *C.uchar, n C.uint) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	p := plugOf(r).plug()
	if p == nil || n > maxLen || (data == nil && n != 0) {
		return 0
	}
	return b2i(p.Write(resume != 0, uint32(uid), int(cmd), cbytes(data, n)))
}

//export dce_DC_PLUG_write_more
func dce_DC_PLUG_write_more(r unsafe.Pointer, data *C.uchar, n C.uint) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	p := plugOf(r).plug()
	if p == nil || data == nil || n == 0 || n > maxLen {
		return 0
	}
	return b2i(p.WriteMore(cbytes(data, n)))
}

//export dce_DC_PLUG_commit
func dce_DC_PLUG_commit(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	return b2i(plugOf(r).plug().Commit())
}

//export dce_DC_PLUG_rollback
func dce_DC_PLUG_rollback(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	return b2i(plugOf(r).plug().Rollback())
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
