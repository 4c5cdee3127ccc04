// SPDX-License-Identifier: Apache-2.0

package dc

/*
#cgo CFLAGS: -I${SRCDIR}/../capi/front
#include <stdlib.h>
#include "engine.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/distcache-go/distcache/goimpl/client/dcctx"
	"github.com/distcache-go/distcache/internal/procs"
	capinal "github.com/distcache-go/distcache/nal"
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

func ctxOf(ref unsafe.Pointer) *dcctx.Ctx {
	c, _ := capinal.Restore(ref).(*dcctx.Ctx)
	return c
}

// Every open context, so that a fork can list their pooled descriptors.
var (
	ctxsMu sync.Mutex
	ctxs   = map[*dcctx.Ctx]struct{}{}
)

// pooledFDs returns the descriptors of every persistent connection sitting
// in a pool: a forked child closes its copies at once (its own engine makes
// its own connections), so children do not hold a parent's connection open.
func pooledFDs() []int {
	ctxsMu.Lock()
	defer ctxsMu.Unlock()
	var fds []int
	for c := range ctxs {
		fds = append(fds, c.IdleFDs()...)
	}
	return fds
}

// The front validated the target and the persistent connect already (it runs
// DC_CTX_new without the engine) and passes its resolved form; the engine
// context is made lazily, once per process generation, so it never connects
// early: PERSISTENT gets LATE. The C library's contexts use the
// calling-thread transport; DISTCACHE_CTX=client selects Go's net package.
//
//export dce_DC_CTX_new
func dce_DC_CTX_new(target *C.char, flags C.uint) (ret unsafe.Pointer) {
	defer capinal.Rescue(&ret, nil)
	if target == nil {
		return nil
	}
	c := newCtx(C.GoString(target), uint32(flags))
	if c == nil {
		return nil
	}
	return capinal.Save(c)
}

// newCtx makes and registers the engine context of a DC_CTX.
func newCtx(target string, flags uint32) *dcctx.Ctx {
	if flags&dcctx.FlagPersistent != 0 {
		flags |= dcctx.FlagLate
	}
	// A caller alone in the engine waits for its answer without giving
	// up its P (dcctx.Options.RawWait): with one P, the runtime would
	// otherwise take it back mid-wait and wake a thread to hold it.
	opt := dcctx.Options{Logf: probationLog, RawWait: procs.Alone}
	if os.Getenv("DISTCACHE_CTX") == "client" {
		opt.Transport = dcctx.TransportNet
	}
	c, err := dcctx.New(target, flags, &opt)
	if err != nil {
		return nil
	}
	ctxsMu.Lock()
	ctxs[c] = struct{}{}
	ctxsMu.Unlock()
	return c
}

// probationLog prints a context's probation changes on stderr (in Apache,
// its error log).
func probationLog(format string, args ...any) {
	capinal.Warn(fmt.Sprintf(format, args...))
}

// freeCtx closes c and forgets it.
func freeCtx(c *dcctx.Ctx) {
	ctxsMu.Lock()
	delete(ctxs, c)
	ctxsMu.Unlock()
	c.Close()
}

//export dce_DC_CTX_free
func dce_DC_CTX_free(ref unsafe.Pointer) {
	defer capinal.RescueVoid()
	if c := ctxOf(ref); c != nil {
		freeCtx(c)
		capinal.Unref(ref)
	}
}

// op runs one operation of the C library's DC_CTX (how: DCF_HOW_*) and
// then hands the front one of the context's idle connections in link
// (DCF_LINK_*, capi/front/engine.h): the front's fast path does the next
// operations on it without entering the engine (dcctx/handoff.go).
func op[T any](c *dcctx.Ctx, how C.int, link *C.long, fail T, first func(*dcctx.Ctx) T, resent func(dcctx.Resent) T) T {
	if c == nil {
		return fail
	}
	ctxOps.Add(1)
	drops := c.Drops()
	var r T
	if how == C.DCF_HOW_RESENT {
		r = resent(c.Resent())
	} else {
		r = first(c)
	}
	if link != nil {
		l := unsafe.Slice(link, C.DCF_LINK_N)
		h := c.Handoff()
		l[C.DCF_LINK_FD] = C.long(h.FD)
		l[C.DCF_LINK_BOUND_US] = C.long(h.Bound / time.Microsecond)
		l[C.DCF_LINK_FLOOR_US] = C.long(h.Floor / time.Microsecond)
		l[C.DCF_LINK_CEIL_US] = C.long(h.Ceil / time.Microsecond)
		l[C.DCF_LINK_LIFETIME_MS] = C.long(h.Lifetime / time.Millisecond)
		l[C.DCF_LINK_DROP] = 0
		if c.Drops() != drops {
			l[C.DCF_LINK_DROP] = 1
		}
	}
	return r
}

// ctxOps counts the DC_CTX operations the engine performed (dce_ctx_ops).
var ctxOps atomic.Uint64

// dce_ctx_ops is the number of DC_CTX operations this engine performed:
// the C suite checks that a warm operation of the front's fast path never
// enters the engine.
//
//export dce_ctx_ops
func dce_ctx_ops() (ret C.ulong) {
	defer capinal.Rescue(&ret, 0)
	return C.ulong(ctxOps.Load())
}

//export dce_DC_CTX_add_session
func dce_DC_CTX_add_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, data *C.uchar, dataLen C.uint, timeout C.ulong, how C.int, link *C.long) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	procs.Enter()
	defer procs.Leave()
	if id == nil || data == nil || idLen == 0 || dataLen == 0 || idLen > maxLen || dataLen > maxLen {
		return 0
	}
	i, d, t := cbytes(id, idLen), cbytes(data, dataLen), uint64(timeout)
	return op(ctxOf(ref), how, link, 0,
		func(c *dcctx.Ctx) C.int { return cbool(c.AddSession(i, d, t)) },
		func(r dcctx.Resent) C.int { return cbool(r.AddSession(i, d, t)) })
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

//export dce_DC_CTX_remove_session
func dce_DC_CTX_remove_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, how C.int, link *C.long) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	procs.Enter()
	defer procs.Leave()
	if id == nil || idLen == 0 || idLen > maxLen {
		return 0
	}
	i := cbytes(id, idLen)
	return op(ctxOf(ref), how, link, 0,
		func(c *dcctx.Ctx) C.int { return cbool(c.RemoveSession(i)) },
		func(r dcctx.Resent) C.int { return cbool(r.RemoveSession(i)) })
}

// getResult is GET's result for the C caller: used is set on success only.
func getResult(n int, ok bool, used *C.uint) C.int {
	if !ok {
		return 0
	}
	if used != nil {
		*used = C.uint(n)
	}
	return 1
}

//export dce_DC_CTX_get_session
func dce_DC_CTX_get_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, buf *C.uchar, size C.uint, used *C.uint, how C.int, link *C.long) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	procs.Enter()
	defer procs.Leave()
	if id == nil || idLen == 0 || idLen > maxLen {
		return 0
	}
	i, dst := cbytes(id, idLen), cbytes(buf, size)
	return op(ctxOf(ref), how, link, 0,
		func(c *dcctx.Ctx) C.int { n, ok := c.GetSession(i, dst); return getResult(n, ok, used) },
		func(r dcctx.Resent) C.int { n, ok := r.GetSession(i, dst); return getResult(n, ok, used) })
}

//export dce_DC_CTX_reget_session
func dce_DC_CTX_reget_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, buf *C.uchar, size C.uint, used *C.uint) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	procs.Enter()
	defer procs.Leave()
	c := ctxOf(ref)
	if c == nil || id == nil || idLen == 0 || idLen > maxLen {
		return 0
	}
	n, ok := c.RegetSession(cbytes(id, idLen), cbytes(buf, size))
	return getResult(n, ok, used)
}

//export dce_DC_CTX_has_session
func dce_DC_CTX_has_session(ref unsafe.Pointer, id *C.uchar, idLen C.uint, how C.int, link *C.long) (ret C.int) {
	defer capinal.Rescue(&ret, -1)
	procs.Enter()
	defer procs.Leave()
	if id == nil || idLen == 0 || idLen > maxLen {
		return -1
	}
	i := cbytes(id, idLen)
	return op(ctxOf(ref), how, link, -1,
		func(c *dcctx.Ctx) C.int { return C.int(c.HasSession(i)) },
		func(r dcctx.Resent) C.int { return C.int(r.HasSession(i)) })
}

//export dce_DC_CTX_failed
func dce_DC_CTX_failed(ref unsafe.Pointer, timedout C.int, boundUS C.uint) {
	defer capinal.RescueVoid()
	if c := ctxOf(ref); c != nil {
		c.Failed(timedout != 0, time.Duration(boundUS)*time.Microsecond)
	}
}
