// SPDX-License-Identifier: Apache-2.0

package dc

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include <stdlib.h>
#include <sys/time.h>
#include <distcache/dc_server.h>

// Calls through a caller-supplied DC_CACHE_cb (Go cannot call C function
// pointers directly).
static DC_CACHE *cb_new(const DC_CACHE_cb *cb, unsigned int max) { return cb->cache_new(max); }
static void cb_free(const DC_CACHE_cb *cb, DC_CACHE *c) { cb->cache_free(c); }
static int cb_add(const DC_CACHE_cb *cb, DC_CACHE *c, const struct timeval *now, unsigned long ms,
	const unsigned char *id, unsigned int idl, const unsigned char *d, unsigned int dl)
	{ return cb->cache_add(c, now, ms, id, idl, d, dl); }
static unsigned int cb_get(const DC_CACHE_cb *cb, DC_CACHE *c, const struct timeval *now,
	const unsigned char *id, unsigned int idl, unsigned char *store, unsigned int size)
	{ return cb->cache_get(c, now, id, idl, store, size); }
static int cb_remove(const DC_CACHE_cb *cb, DC_CACHE *c, const struct timeval *now,
	const unsigned char *id, unsigned int idl) { return cb->cache_remove(c, now, id, idl); }
static int cb_have(const DC_CACHE_cb *cb, DC_CACHE *c, const struct timeval *now,
	const unsigned char *id, unsigned int idl) { return cb->cache_have(c, now, id, idl); }
static unsigned int cb_num(const DC_CACHE_cb *cb, DC_CACHE *c, const struct timeval *now)
	{ return cb->cache_num_items(c, now); }
*/
import "C"

import (
	"sync"
	"time"
	"unsafe"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/plug"
	gserver "github.com/distcache-go/distcache/goimpl/server"
	capinal "github.com/distcache-go/distcache/nal"
)

// DC_SERVER and DC_CLIENT are goimpl/server's Server and Client; this file
// only converts. What stays here is what only the export layer can do: the
// caller's DC_CACHE_cb called through C (cCache), the references the front
// holds, and the list of clients the engine deleted by itself
// (DC_SERVER_clients_io, DC_SERVER_free) whose front handles the front must
// release (dce_DC_SERVER_reap).

// server is the engine object behind a DC_SERVER.
type server struct {
	s *gserver.Server
}

// sclient is the engine object behind a DC_CLIENT.
type sclient struct {
	c     *gserver.Client
	srv   *server
	conn  unsafe.Pointer // the connection's reference
	front unsafe.Pointer // the front's DC_CLIENT handle (C memory)
	ref   unsafe.Pointer
	// byFront: the front deletes the client (DC_SERVER_del_client) and
	// releases its handle itself.
	byFront bool
}

// Front handles of clients the engine deleted, for the front to release.
var (
	deadMu sync.Mutex
	dead   []unsafe.Pointer
)

func srvOf(r unsafe.Pointer) *server {
	s, _ := capinal.Restore(r).(*server)
	return s
}

func cliOf(r unsafe.Pointer) *sclient {
	c, _ := capinal.Restore(r).(*sclient)
	return c
}

// tvTime converts the caller's clock; NULL means now.
func tvTime(now *C.struct_timeval) time.Time {
	if now == nil {
		return time.Now()
	}
	return time.Unix(int64(now.tv_sec), int64(now.tv_usec)*1000)
}

// defCache is goimpl/cache's default cache with the size it was made
// with (for the fork snapshot).
type defCache struct {
	*cache.Cache
	max int
}

func newDefCache(max int) (*defCache, bool) {
	c, err := cache.NewDefault(max)
	if err != nil {
		return nil, false
	}
	return &defCache{c, max}, true
}

// newServer wraps a server made with cache.
func newServer(cc gserver.Cache) *server {
	s := gserver.NewWith(0, func(int) (gserver.Cache, error) { return cc, nil })
	if s == nil {
		return nil
	}
	return &server{s: s}
}

// addClient makes the engine object of a client and its reference.
func (s *server) addClient(c *gserver.Client, conn, front unsafe.Pointer) *sclient {
	cl := &sclient{c: c, srv: s, conn: conn, front: front}
	cl.ref = capinal.Save(cl)
	nofree := c.Flags()&gserver.ClientFlagNoFreeConn != 0
	c.OnRelease(func() {
		if !nofree {
			capinal.DropConn(cl.conn) // the plug freed the connection
		}
		capinal.Unref(cl.ref)
		if !cl.byFront {
			deadMu.Lock()
			dead = append(dead, cl.front)
			deadMu.Unlock()
		}
	})
	return cl
}

// cCache calls a caller-supplied DC_CACHE_cb.
type cCache struct {
	cb    *C.DC_CACHE_cb
	c     *C.DC_CACHE
	store unsafe.Pointer // 32768 bytes of C memory for cache_get
}

// cmem copies b into C memory for the duration of a callback.
func cmem(b []byte) (*C.uchar, func()) {
	if len(b) == 0 {
		p := C.malloc(1)
		return (*C.uchar)(p), func() { C.free(p) }
	}
	p := C.CBytes(b)
	return (*C.uchar)(p), func() { C.free(p) }
}

// timeval converts a time for a callback (a Go value without pointers,
// which cgo lets C read during the call).
func timeval(t time.Time) *C.struct_timeval {
	return &C.struct_timeval{tv_sec: C.time_t(t.Unix()), tv_usec: C.suseconds_t(t.Nanosecond() / 1000)}
}

func (c *cCache) Add(now time.Time, ms uint32, id, data []byte) bool {
	ip, f1 := cmem(id)
	defer f1()
	dp, f2 := cmem(data)
	defer f2()
	return C.cb_add(c.cb, c.c, timeval(now), C.ulong(ms), ip, C.uint(len(id)), dp, C.uint(len(data))) != 0
}

// Get makes the two calls the original server makes: the length first,
// then the data into a 32768-byte store.
func (c *cCache) Get(now time.Time, id, dst []byte) int {
	ip, f := cmem(id)
	defer f()
	tv := timeval(now)
	n := int(C.cb_get(c.cb, c.c, tv, ip, C.uint(len(id)), nil, 0))
	if n == 0 || n > maxLen {
		return n
	}
	n = int(C.cb_get(c.cb, c.c, tv, ip, C.uint(len(id)), (*C.uchar)(c.store), maxLen))
	copy(dst, unsafe.Slice((*byte)(c.store), min(n, maxLen)))
	return n
}

func (c *cCache) Remove(now time.Time, id []byte) bool {
	ip, f := cmem(id)
	defer f()
	return C.cb_remove(c.cb, c.c, timeval(now), ip, C.uint(len(id))) != 0
}

func (c *cCache) Have(now time.Time, id []byte) bool {
	ip, f := cmem(id)
	defer f()
	return C.cb_have(c.cb, c.c, timeval(now), ip, C.uint(len(id))) != 0
}

func (c *cCache) NumItems(now time.Time) int { return int(C.cb_num(c.cb, c.c, timeval(now))) }

// Free releases the C cache and the store (called by Server.Free).
func (c *cCache) Free() {
	C.cb_free(c.cb, c.c)
	C.free(c.store)
}

// ---- DC_SERVER ----

// dce_DC_SERVER_new makes a server with impl's cache, or the default cache
// when impl is NULL (the front keeps the process-wide choice).
//
//export dce_DC_SERVER_new
func dce_DC_SERVER_new(max C.uint, impl *C.DC_CACHE_cb) (ret unsafe.Pointer) {
	defer capinal.Rescue(&ret, nil)
	var cc gserver.Cache
	if impl == nil {
		d, ok := newDefCache(int(max))
		if !ok {
			return nil
		}
		cc = d
	} else {
		c := C.cb_new(impl, max)
		if c == nil {
			return nil
		}
		cc = &cCache{cb: impl, c: c, store: C.malloc(maxLen)}
	}
	s := newServer(cc)
	if s == nil {
		return nil
	}
	return capinal.Save(s)
}

//export dce_DC_SERVER_free
func dce_DC_SERVER_free(r unsafe.Pointer) {
	defer capinal.RescueVoid()
	if s := srvOf(r); s != nil {
		s.s.Free()
		capinal.Unref(r)
	}
}

// dce_DC_SERVER_reap returns the front handle of one client the engine
// deleted by itself, or NULL when there is none left.
//
//export dce_DC_SERVER_reap
func dce_DC_SERVER_reap() (ret unsafe.Pointer) {
	defer capinal.Rescue(&ret, nil)
	deadMu.Lock()
	defer deadMu.Unlock()
	if len(dead) == 0 {
		return nil
	}
	h := dead[len(dead)-1]
	dead = dead[:len(dead)-1]
	return h
}

//export dce_DC_SERVER_items_stored
func dce_DC_SERVER_items_stored(r unsafe.Pointer, now *C.struct_timeval) (ret C.uint) {
	defer capinal.Rescue(&ret, 0)
	if s := srvOf(r); s != nil {
		return C.uint(s.s.ItemsStored(tvTime(now)))
	}
	return 0
}

//export dce_DC_SERVER_reset_operations
func dce_DC_SERVER_reset_operations(r unsafe.Pointer) {
	defer capinal.RescueVoid()
	if s := srvOf(r); s != nil {
		s.s.ResetOperations()
	}
}

//export dce_DC_SERVER_num_operations
func dce_DC_SERVER_num_operations(r unsafe.Pointer) (ret C.ulong) {
	defer capinal.Rescue(&ret, 0)
	if s := srvOf(r); s != nil {
		return C.ulong(s.s.NumOperations())
	}
	return 0
}

//export dce_DC_SERVER_new_client
func dce_DC_SERVER_new_client(r, conn unsafe.Pointer, flags C.uint, front unsafe.Pointer) (ret unsafe.Pointer) {
	defer capinal.Rescue(&ret, nil)
	s, w := srvOf(r), capinal.ConnOf(conn)
	if s == nil || w == nil {
		return nil
	}
	c := s.s.NewClient(w.C, uint32(flags))
	if c == nil {
		return nil
	}
	return s.addClient(c, conn, front).ref
}

//export dce_DC_SERVER_del_client
func dce_DC_SERVER_del_client(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	cl := cliOf(r)
	if cl == nil {
		return 0
	}
	cl.byFront = true
	return b2i(cl.c.Delete())
}

//export dce_DC_SERVER_process_client
func dce_DC_SERVER_process_client(r unsafe.Pointer, now *C.struct_timeval) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	cl := cliOf(r)
	if cl == nil {
		return 0
	}
	return b2i(cl.c.Process(tvTime(now)))
}

//export dce_DC_SERVER_clients_io
func dce_DC_SERVER_clients_io(r unsafe.Pointer, now *C.struct_timeval) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	s := srvOf(r)
	if s == nil {
		return 0
	}
	return b2i(s.s.ClientsIO(tvTime(now)))
}

//export dce_DC_SERVER_clients_empty
func dce_DC_SERVER_clients_empty(r unsafe.Pointer) (ret C.int) {
	defer capinal.Rescue(&ret, 1)
	if s := srvOf(r); s != nil {
		return b2i(s.s.ClientsEmpty())
	}
	return 1
}

// restoreClient rebuilds a client after fork over its imported plug.
func (s *server) restoreClient(p *plug.Plug, flags uint32, conn, front unsafe.Pointer) *sclient {
	c := s.s.AdoptClient(p, flags)
	if c == nil {
		return nil
	}
	return s.addClient(c, conn, front)
}
