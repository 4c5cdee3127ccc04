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
	"sort"
	"sync"
	"time"
	"unsafe"

	pointer "github.com/mattn/go-pointer"

	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
	capinal "github.com/distcache-go/distcache/nal"
)

// DC_SERVER over goimpl/plug. goimpl/server had no exported API when this
// layer was written, so the request processing (LIBDISTCACHESERVER.md §4)
// and the default cache (§5, indexed instead of linear, no eviction leak)
// live here.

const (
	clientNoFreeConn = 0x1
	clientInServer   = 0x2
	maxExpiry        = 604800000
	cacheMinSize     = 64
	cacheMaxSize     = 60000
)

// cache is one cache implementation bound to one server.
type cache interface {
	add(now *C.struct_timeval, ms uint32, id, data []byte) bool
	get(now *C.struct_timeval, id []byte, withData bool) (uint32, []byte)
	remove(now *C.struct_timeval, id []byte) bool
	have(now *C.struct_timeval, id []byte) bool
	num(now *C.struct_timeval) uint32
	free()
}

type server struct {
	cache   cache
	clients []*sclient
	ops     uint64
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

func nowMS(now *C.struct_timeval) int64 {
	if now == nil {
		return time.Now().UnixMilli()
	}
	return int64(now.tv_sec)*1000 + int64(now.tv_usec)/1000
}

// ---- the default cache ----

type entry struct {
	data []byte
	exp  int64 // ms; expired when now > exp
}

type defCache struct {
	max int
	m   map[string]*entry
}

func (d *defCache) live(now *C.struct_timeval, id []byte) *entry {
	e := d.m[string(id)]
	if e != nil && nowMS(now) > e.exp {
		delete(d.m, string(id))
		return nil
	}
	return e
}

func (d *defCache) purge(now *C.struct_timeval) {
	t := nowMS(now)
	for k, e := range d.m {
		if t > e.exp {
			delete(d.m, k)
		}
	}
}

func (d *defCache) add(now *C.struct_timeval, ms uint32, id, data []byte) bool {
	if d.live(now, id) != nil {
		return false
	}
	if len(d.m) >= d.max {
		d.purge(now)
	}
	if len(d.m) >= d.max {
		// Full: drop the max/30 (at least one) entries closest to expiry.
		keys := make([]string, 0, len(d.m))
		for k := range d.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return d.m[keys[i]].exp < d.m[keys[j]].exp })
		n := d.max / 30
		if n < 1 {
			n = 1
		}
		for _, k := range keys[:n] {
			delete(d.m, k)
		}
	}
	d.m[string(id)] = &entry{data: append([]byte(nil), data...), exp: nowMS(now) + int64(ms)}
	return true
}

func (d *defCache) get(now *C.struct_timeval, id []byte, withData bool) (uint32, []byte) {
	e := d.live(now, id)
	if e == nil {
		return 0, nil
	}
	return uint32(len(e.data)), e.data
}

func (d *defCache) remove(now *C.struct_timeval, id []byte) bool {
	if d.live(now, id) == nil {
		return false
	}
	delete(d.m, string(id))
	return true
}

func (d *defCache) have(now *C.struct_timeval, id []byte) bool { return d.live(now, id) != nil }

func (d *defCache) num(now *C.struct_timeval) uint32 {
	d.purge(now)
	return uint32(len(d.m))
}

func (d *defCache) free() { d.m = nil }

// ---- a caller-supplied DC_CACHE_cb ----

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

func (c *cCache) add(now *C.struct_timeval, ms uint32, id, data []byte) bool {
	ip, f1 := cmem(id)
	defer f1()
	dp, f2 := cmem(data)
	defer f2()
	return C.cb_add(c.cb, c.c, now, C.ulong(ms), ip, C.uint(len(id)), dp, C.uint(len(data))) != 0
}

func (c *cCache) get(now *C.struct_timeval, id []byte, withData bool) (uint32, []byte) {
	ip, f := cmem(id)
	defer f()
	if !withData {
		return uint32(C.cb_get(c.cb, c.c, now, ip, C.uint(len(id)), nil, 0)), nil
	}
	n := uint32(C.cb_get(c.cb, c.c, now, ip, C.uint(len(id)), (*C.uchar)(c.store), maxLen))
	if n == 0 || n > maxLen {
		return n, nil
	}
	return n, C.GoBytes(c.store, C.int(n))
}

func (c *cCache) remove(now *C.struct_timeval, id []byte) bool {
	ip, f := cmem(id)
	defer f()
	return C.cb_remove(c.cb, c.c, now, ip, C.uint(len(id))) != 0
}

func (c *cCache) have(now *C.struct_timeval, id []byte) bool {
	ip, f := cmem(id)
	defer f()
	return C.cb_have(c.cb, c.c, now, ip, C.uint(len(id))) != 0
}

func (c *cCache) num(now *C.struct_timeval) uint32 { return uint32(C.cb_num(c.cb, c.c, now)) }

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
		if max < cacheMinSize || max > cacheMaxSize {
			return nil
		}
		s.cache = &defCache{max: int(max), m: make(map[string]*entry)}
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
		return C.uint(s.cache.num(now))
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
	var out []byte
	switch cmd {
	case plug.CmdAdd:
		req, code, ok := proto.ParseAddRequest(payload)
		if !ok {
			p.Consume()
			return false
		}
		if code == proto.ResultOK {
			if req.TimeoutMS > maxExpiry {
				code = proto.AddErrTimeoutRange
			} else if !s.cache.add(now, req.TimeoutMS, req.ID, req.Data) {
				code = proto.AddErrMatching
			}
		}
		out = []byte{code}
	case plug.CmdGet:
		n, _ := s.cache.get(now, payload, false)
		switch {
		case n == 0:
			out = []byte{proto.ResultNotOK}
		case n > maxLen:
			p.Consume()
			return false
		default:
			n2, data := s.cache.get(now, payload, true)
			if n2 == 0 || data == nil {
				p.Consume()
				return false
			}
			out = data
		}
	case plug.CmdRemove:
		out = []byte{proto.ResultNotOK}
		if s.cache.remove(now, payload) {
			out[0] = proto.ResultOK
		}
	case plug.CmdHave:
		out = []byte{proto.ResultNotOK}
		if s.cache.have(now, payload) {
			out[0] = proto.ResultOK
		}
	default:
		p.Consume()
		return false
	}
	if !p.Write(false, uid, cmd, out) || !p.Commit() {
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
	return b2i(cl.process(now))
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
