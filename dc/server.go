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

	pointer "github.com/mattn/go-pointer"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
	gserver "github.com/distcache-go/distcache/goimpl/server"
	capinal "github.com/distcache-go/distcache/nal"
)

// DC_SERVER over goimpl/plug. Requests are answered by server.Handle
// against a server.Cache: the default cache is goimpl/cache's (hashed,
// expiry heap, the original's eviction order), a caller's DC_CACHE_cb is
// adapted by cCache. Client bookkeeping stays here because the front owns
// the DC_CLIENT handles (clients the engine deletes are reaped by it).

const (
	clientNoFreeConn = 0x1
	clientInServer   = 0x2
)

// engineCache is a server.Cache the engine must release with the server.
type engineCache interface {
	gserver.Cache
	free()
}

type server struct {
	cache   engineCache
	clients []*sclient
	ops     uint64
	out     []byte // response scratch, shared by the server's clients
}

type sclient struct {
	srv   *server
	p     *plug.Plug
	conn  unsafe.Pointer
	flags uint32
	front unsafe.Pointer // the front's DC_CLIENT handle (C memory)
	ref   unsafe.Pointer
}

// Front handles of clients the engine deleted (clients_io errors,
// DC_SERVER_free), for the front to release (dce_DC_SERVER_reap).
var (
	deadMu sync.Mutex
	dead   []unsafe.Pointer
)

func srvOf(r unsafe.Pointer) *server {
	s, _ := pointer.Restore(r).(*server)
	return s
}

func cliOf(r unsafe.Pointer) *sclient {
	c, _ := pointer.Restore(r).(*sclient)
	return c
}

// tvTime converts the caller's clock; NULL means now.
func tvTime(now *C.struct_timeval) time.Time {
	if now == nil {
		return time.Now()
	}
	return time.Unix(int64(now.tv_sec), int64(now.tv_usec)*1000)
}

// defCache is goimpl/cache's default cache.
type defCache struct {
	*cache.Cache
	max int
}

func (defCache) free() {}

func newDefCache(max int) (*defCache, bool) {
	c, err := cache.NewDefault(max)
	if err != nil {
		return nil, false
	}
	return &defCache{c, max}, true
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

func (c *cCache) free() {
	C.cb_free(c.cb, c.c)
	C.free(c.store)
}

// ---- DC_SERVER ----

// dce_DC_SERVER_new makes a server with impl's cache, or the default cache
// when impl is NULL (the front keeps the process-wide choice).
//
//export dce_DC_SERVER_new
func dce_DC_SERVER_new(max C.uint, impl *C.DC_CACHE_cb) unsafe.Pointer {
	s := &server{}
	if impl == nil {
		d, ok := newDefCache(int(max))
		if !ok {
			return nil
		}
		s.cache = d
	} else {
		c := C.cb_new(impl, max)
		if c == nil {
			return nil
		}
		s.cache = &cCache{cb: impl, c: c, store: C.malloc(maxLen)}
	}
	return pointer.Save(s)
}

func (s *server) drop(cl *sclient, toReap bool) {
	for i, x := range s.clients {
		if x == cl {
			s.clients = append(s.clients[:i], s.clients[i+1:]...)
			break
		}
	}
	nofree := cl.flags&clientNoFreeConn != 0
	cl.p.Free()
	if !nofree {
		capinal.DropConn(cl.conn)
	}
	pointer.Unref(cl.ref)
	if toReap {
		deadMu.Lock()
		dead = append(dead, cl.front)
		deadMu.Unlock()
	}
}

//export dce_DC_SERVER_free
func dce_DC_SERVER_free(r unsafe.Pointer) {
	s := srvOf(r)
	if s == nil {
		return
	}
	s.cache.free()
	for _, cl := range append([]*sclient(nil), s.clients...) {
		if cl.flags&clientInServer != 0 {
			s.drop(cl, true)
		}
	}
	pointer.Unref(r)
}

// dce_DC_SERVER_reap returns the front handle of one client the engine
// deleted by itself, or NULL when there is none left.
//
//export dce_DC_SERVER_reap
func dce_DC_SERVER_reap() unsafe.Pointer {
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
func dce_DC_SERVER_items_stored(r unsafe.Pointer, now *C.struct_timeval) C.uint {
	if s := srvOf(r); s != nil {
		return C.uint(s.cache.NumItems(tvTime(now)))
	}
	return 0
}

//export dce_DC_SERVER_reset_operations
func dce_DC_SERVER_reset_operations(r unsafe.Pointer) {
	if s := srvOf(r); s != nil {
		s.ops = 0
	}
}

//export dce_DC_SERVER_num_operations
func dce_DC_SERVER_num_operations(r unsafe.Pointer) C.ulong {
	if s := srvOf(r); s != nil {
		return C.ulong(s.ops)
	}
	return 0
}

//export dce_DC_SERVER_new_client
func dce_DC_SERVER_new_client(r, conn unsafe.Pointer, flags C.uint, front unsafe.Pointer) unsafe.Pointer {
	s, w := srvOf(r), capinal.ConnOf(conn)
	if s == nil || w == nil {
		return nil
	}
	pf := uint32(0)
	if flags&clientNoFreeConn != 0 {
		pf = plug.FlagNoFreeConn
	}
	p := plug.New(w.C, pf)
	if p == nil {
		return nil
	}
	cl := &sclient{srv: s, p: p, conn: conn, flags: uint32(flags), front: front}
	cl.ref = pointer.Save(cl)
	s.clients = append(s.clients, cl)
	return cl.ref
}

//export dce_DC_SERVER_del_client
func dce_DC_SERVER_del_client(r unsafe.Pointer) C.int {
	cl := cliOf(r)
	if cl == nil {
		return 0
	}
	cl.srv.drop(cl, false)
	return 1
}

// process answers the request the plug holds, if any (§4); false means the
// client must be dropped.
func (cl *sclient) process(now *C.struct_timeval) bool {
	p, s := cl.p, cl.srv
	if p.WriteBusy() {
		return true // answer when the previous response is queued (E-5)
	}
	uid, cmd, payload, ok := p.Read(false)
	if !ok {
		return true
	}
	op, _ := proto.OpFromCmd(cmd)
	out, ok := gserver.Handle(s.cache, tvTime(now), &proto.Message{UID: uid, Op: op, Payload: payload}, s.out)
	if cap(out) >= proto.MaxPayload {
		s.out = out[:0]
	}
	if !ok || !p.Write(false, uid, cmd, out) || !p.Commit() {
		p.Rollback()
		p.Consume()
		return false
	}
	s.ops++
	return p.Consume()
}

//export dce_DC_SERVER_process_client
func dce_DC_SERVER_process_client(r unsafe.Pointer, now *C.struct_timeval) C.int {
	cl := cliOf(r)
	if cl == nil {
		return 0
	}
	// The caller may run the connection's I/O itself (a client without
	// IN_SERVER, which never worked in the original, E-34): decode what its
	// read buffer holds, and encode the answer into its send buffer.
	if !cl.p.Flush() {
		return 0
	}
	ok := cl.process(now)
	cl.p.Flush()
	return b2i(ok)
}

//export dce_DC_SERVER_clients_io
func dce_DC_SERVER_clients_io(r unsafe.Pointer, now *C.struct_timeval) C.int {
	s := srvOf(r)
	if s == nil {
		return 0
	}
	for _, cl := range append([]*sclient(nil), s.clients...) {
		if cl.flags&clientInServer == 0 {
			continue
		}
		if !cl.p.IO() || !cl.process(now) {
			s.drop(cl, true)
		}
	}
	return 1
}

//export dce_DC_SERVER_clients_empty
func dce_DC_SERVER_clients_empty(r unsafe.Pointer) C.int {
	if s := srvOf(r); s != nil {
		return b2i(len(s.clients) == 0)
	}
	return 1
}
