// SPDX-License-Identifier: Apache-2.0

package dc

/*
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <distcache/dc_server.h>

// C memory addresses travel through the snapshot as integers.
static void *u2p(uint64_t v) { return (void *)(uintptr_t)v; }
*/
import "C"

import (
	"encoding/json"
	"unsafe"

	"github.com/distcache-go/distcache/goimpl/cache"
	gonal "github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	gserver "github.com/distcache-go/distcache/goimpl/server"
	capinal "github.com/distcache-go/distcache/nal"
)

// Fork support. The front's atfork prepare handler asks the live engine for
// a snapshot of every object the front has handles for (dce_snapshot); in
// the child, the fresh engine rebuilds them (dce_restore) and the front
// re-points its handles. Objects refer to each other by their index in the
// front's list. Descriptors keep their numbers across fork(), so the states
// carry them as they are; a custom DC_CACHE_cb and its cache live in C memory,
// which the child inherits. A default cache's sessions are not copied
// either: the snapshot says where they are in the parent's memory
// (cache.Freeze, the cache locked until dce_fork_parent), and the child's
// cache takes them over from its copy-on-write image of it (cache.Adopt).

// Object kinds: kinds_gen.go (generated from capi/front/api.tab, like the
// front's DCF_K_*).

// The snapshot is a list of records, one per object: its kind, its links
// to other objects by index, and its kind's own state, the type goimpl
// gives it (gonal.AddressState ... plug.State), or for a server or client
// the few fields below.
type snapObj struct {
	Kind  int
	Sel   int             // listener, connection: the selector it is bound to, or -1
	Ref   int             // plug: its connection; client: its server; or -1
	Conn  int             // client: its connection, or -1
	State json.RawMessage // the kind's state
}

// serverState is a DC_SERVER's: its counter and either a default cache's
// image or a custom cache's C objects.
type serverState struct {
	Ops    uint64
	Max    int         `json:",omitempty"` // default cache: its bound,
	Layout uint64      `json:",omitempty"` // and where its entries are
	Shards []snapShard `json:",omitempty"` // (cache.Image)
	CB     uint64      `json:",omitempty"` // custom cache (C memory)
	Cache  uint64      `json:",omitempty"`
	Store  uint64      `json:",omitempty"`
}

// snapShard is where one shard of a default cache's entries are in the
// parent's memory (cache.ShardImage), which the child inherits.
type snapShard struct {
	At  uint64
	Len int
}

// clientState is a DC_CLIENT's: its flags, the front's handle, its plug.
type clientState struct {
	Flags uint32
	Front uint64
	Plug  plug.State
}

// Caches frozen by dce_snapshot, thawed by dce_fork_parent (in the parent;
// in the child this engine is gone).
var frozen []func()

func thawAll() {
	for _, thaw := range frozen {
		thaw()
	}
	frozen = nil
}

// dce_fork_parent runs in the parent once fork() returned: the caches the
// snapshot froze take calls again.
//
//export dce_fork_parent
func dce_fork_parent() {
	defer capinal.RescueVoid()
	thawAll()
}

// dce_snapshot encodes the objects behind refs[0..n) (kinds[i] each) into C
// memory (*out, *outlen; free with free(3)). Returns 0 on failure.
//
//export dce_snapshot
func dce_snapshot(kinds *C.int, refs *unsafe.Pointer, n C.int, out **C.char, outlen *C.size_t) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	thawAll() // none should be left; never keep one frozen for good
	ks := unsafe.Slice(kinds, int(n))
	rs := unsafe.Slice(refs, int(n))
	index := map[any]int{}
	for i := range rs {
		switch v := capinal.Restore(rs[i]).(type) {
		case *gonal.Selector:
			index[v] = i
		case *capinal.Conn:
			index[v.C] = i
		case *server:
			index[v] = i
		}
	}
	selIdx := func(s *gonal.Selector) int {
		if i, ok := index[s]; ok && s != nil {
			return i
		}
		return -1
	}
	objs := make([]snapObj, n)
	for i := range rs {
		o := &objs[i]
		o.Sel, o.Ref, o.Conn = -1, -1, -1
		var kind int
		var st any
		switch v := capinal.Restore(rs[i]).(type) {
		case *gonal.Address:
			kind, st = kAddress, v.Export()
		case *gonal.Selector:
			kind, st = kSelector, v.Export()
		case *gonal.Listener:
			kind, st, o.Sel = kListener, v.Export(), selIdx(v.Selector())
		case *capinal.Conn:
			kind, st, o.Sel = kConnection, v.C.Export(), selIdx(v.C.Selector())
		case *gonal.Buffer:
			kind, st = kBuffer, v.Export()
		case *cPlug:
			kind, st = kPlug, v.p.Export()
			if w := capinal.ConnOf(v.conn); w != nil {
				if j, ok := index[w.C]; ok {
					o.Ref = j
				}
			}
		case *server:
			ss := serverState{Ops: v.s.NumOperations()}
			switch c := v.s.Cache().(type) {
			case *defCache:
				// Where the entries are, not a copy of them: the
				// cache stays locked until dce_fork_parent, so the
				// child's copy of the memory is this image.
				img, thaw := c.Freeze()
				frozen = append(frozen, thaw)
				ss.Max, ss.Layout = c.max, img.Layout
				for _, sh := range img.Shards {
					ss.Shards = append(ss.Shards, snapShard{uint64(uintptr(sh.Entries)), sh.Len})
				}
			case *cCache:
				ss.CB, ss.Cache, ss.Store = uint64(uintptr(unsafe.Pointer(c.cb))),
					uint64(uintptr(unsafe.Pointer(c.c))), uint64(uintptr(c.store))
			}
			kind, st = kServer, ss
		case *sclient:
			kind, st = kClient, clientState{v.c.Flags(), uint64(uintptr(v.front)), v.c.Plug().Export()}
			if j, ok := index[v.srv]; ok {
				o.Ref = j
			}
			if w := capinal.ConnOf(v.conn); w != nil {
				if j, ok := index[w.C]; ok {
					o.Conn = j
				}
			}
		}
		if kind != int(ks[i]) {
			continue // unknown, or not what the front says: not restorable
		}
		b, err := json.Marshal(st)
		if err != nil {
			thawAll()
			return 0
		}
		o.Kind, o.State = kind, b
	}
	b, err := json.Marshal(objs)
	if err != nil {
		thawAll()
		return 0
	}
	*out = (*C.char)(C.CBytes(b))
	*outlen = C.size_t(len(b))
	return 1
}

// stateOf decodes a record's state as its kind's type.
func stateOf[T any](o snapObj) (st T, ok bool) {
	return st, len(o.State) > 0 && json.Unmarshal(o.State, &st) == nil
}

// dce_restore rebuilds the objects of a snapshot; newrefs[i] is the new
// reference of object i, or NULL if it could not be restored. Returns the
// number of objects restored.
//
//export dce_restore
func dce_restore(data *C.char, n C.size_t, newrefs *unsafe.Pointer, count C.int) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	var objs []snapObj
	if json.Unmarshal(C.GoBytes(unsafe.Pointer(data), C.int(n)), &objs) != nil || len(objs) != int(count) {
		return 0
	}
	out := unsafe.Slice(newrefs, int(count))
	vals := make([]any, len(objs))
	done := 0
	set := func(i int, v any, ref unsafe.Pointer) {
		vals[i], out[i] = v, ref
		done++
	}
	// Pass 1: selectors, addresses, buffers, servers.
	for i, o := range objs {
		out[i] = nil
		switch o.Kind {
		case kSelector:
			if st, ok := stateOf[gonal.SelectorState](o); ok {
				if s := gonal.ImportSelector(st); s != nil {
					set(i, s, capinal.Save(s))
				}
			}
		case kAddress:
			if st, ok := stateOf[gonal.AddressState](o); ok {
				if a := gonal.ImportAddress(st); a != nil {
					set(i, a, capinal.Save(a))
				}
			}
		case kBuffer:
			if st, ok := stateOf[gonal.BufferState](o); ok {
				if b := gonal.NewBuffer(); b.Import(st) {
					set(i, b, capinal.Save(b))
				}
			}
		case kServer:
			ss, ok := stateOf[serverState](o)
			if !ok {
				continue
			}
			var cc gserver.Cache
			if ss.CB != 0 {
				cc = &cCache{cb: (*C.DC_CACHE_cb)(C.u2p(C.uint64_t(ss.CB))),
					c: (*C.DC_CACHE)(C.u2p(C.uint64_t(ss.Cache))), store: C.u2p(C.uint64_t(ss.Store))}
			} else {
				d, ok := newDefCache(ss.Max)
				if !ok {
					continue
				}
				img := cache.Image{Layout: ss.Layout, Shards: make([]cache.ShardImage, len(ss.Shards))}
				for j, sh := range ss.Shards {
					img.Shards[j] = cache.ShardImage{Entries: C.u2p(C.uint64_t(sh.At)), Len: sh.Len}
				}
				if !d.Adopt(img) {
					continue
				}
				cc = d
			}
			if s := newServer(cc); s != nil {
				s.s.SetOperations(ss.Ops)
				set(i, s, capinal.Save(s))
			}
		}
	}
	sel := func(j int) *gonal.Selector {
		if j < 0 || j >= len(vals) {
			return nil
		}
		s, _ := vals[j].(*gonal.Selector)
		return s
	}
	// Pass 2: listeners and connections, bound again.
	for i, o := range objs {
		switch o.Kind {
		case kListener:
			st, ok := stateOf[gonal.ListenerState](o)
			if !ok {
				continue
			}
			if l := gonal.ImportListener(st); l != nil {
				if s := sel(o.Sel); s != nil {
					l.AddToSelector(s)
				}
				set(i, l, capinal.Save(l))
			}
		case kConnection:
			st, ok := stateOf[gonal.ConnectionState](o)
			if !ok {
				continue
			}
			if c := gonal.ImportConnection(st); c != nil {
				if s := sel(o.Sel); s != nil {
					c.AddToSelector(s)
				}
				ref := capinal.NewConn(c)
				set(i, capinal.ConnOf(ref), ref)
			}
		}
	}
	connAt := func(j int) (*capinal.Conn, unsafe.Pointer) {
		if j < 0 || j >= len(vals) {
			return nil, nil
		}
		w, _ := vals[j].(*capinal.Conn)
		return w, out[j]
	}
	// Pass 3: plugs and clients over their connections.
	for i, o := range objs {
		switch o.Kind {
		case kPlug:
			st, ok := stateOf[plug.State](o)
			if w, ref := connAt(o.Ref); ok && w != nil {
				if p := plug.Import(w.C, st); p != nil {
					cp := &cPlug{p: p, conn: ref}
					set(i, cp, capinal.Save(cp))
				}
			}
		case kClient:
			w, ref := connAt(o.Conn)
			var s *server
			if o.Ref >= 0 && o.Ref < len(vals) {
				s, _ = vals[o.Ref].(*server)
			}
			cs, ok := stateOf[clientState](o)
			if !ok || w == nil || s == nil {
				continue
			}
			if p := plug.Import(w.C, cs.Plug); p != nil {
				if cl := s.restoreClient(p, cs.Flags, ref, C.u2p(C.uint64_t(cs.Front))); cl != nil {
					set(i, cl, cl.ref)
				}
			}
		}
	}
	return C.int(done)
}

// dce_conn_bufs gives the references of a connection's two buffers.
//
//export dce_conn_bufs
func dce_conn_bufs(ref unsafe.Pointer, rd, sd *unsafe.Pointer) {
	defer capinal.RescueVoid()
	if w := capinal.ConnOf(ref); w != nil {
		*rd, *sd = w.Bufs()
	}
}

// dce_fork_fds writes up to n of the descriptors that a forked child should
// close at once (pooled DC_CTX connections) to out and returns how many
// there are, so that a caller with too small an array can grow it and ask
// again (out may be NULL when n is 0).
//
//export dce_fork_fds
func dce_fork_fds(out *C.int, n C.int) (ret C.int) {
	defer capinal.Rescue(&ret, 0)
	fds := pooledFDs()
	if n > 0 && out != nil {
		dst := unsafe.Slice(out, int(n))
		for i := 0; i < len(fds) && i < len(dst); i++ {
			dst[i] = C.int(fds[i])
		}
	}
	return C.int(len(fds))
}
