// SPDX-License-Identifier: Apache-2.0

package nal

/*
#include <stdlib.h>
*/
import "C"

import (
	"errors"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	gonal "github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/internal/procs"
)

// Conn is the engine object behind a NAL_CONNECTION: the connection and the
// references of its two buffers, which the front hands out as the stable
// NAL_CONNECTION_get_read/get_send handles. Exported for the dc layer.
type Conn struct {
	C      *gonal.Connection
	rd, sd unsafe.Pointer
}

// connBuf is a connection's read or send buffer seen through its connection:
// nil while the connection is unused.
type connBuf struct {
	c    *gonal.Connection
	send bool
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func cstr(p *C.char) *string {
	if p == nil {
		return nil
	}
	s := C.GoString(p)
	return &s
}

func addrOf(r unsafe.Pointer) *gonal.Address {
	a, _ := Restore(r).(*gonal.Address)
	return a
}

func selOf(r unsafe.Pointer) *gonal.Selector {
	s, _ := Restore(r).(*gonal.Selector)
	return s
}

func listOf(r unsafe.Pointer) *gonal.Listener {
	l, _ := Restore(r).(*gonal.Listener)
	return l
}

// ConnOf returns the engine connection behind a reference (nil if none).
func ConnOf(r unsafe.Pointer) *Conn {
	c, _ := Restore(r).(*Conn)
	return c
}

func connOf(r unsafe.Pointer) *gonal.Connection {
	if c := ConnOf(r); c != nil {
		return c.C
	}
	return nil
}

func bufOf(r unsafe.Pointer) *gonal.Buffer {
	switch b := Restore(r).(type) {
	case *gonal.Buffer:
		return b
	case *connBuf:
		if b.send {
			return b.c.Send()
		}
		return b.c.Read()
	}
	return nil
}

// NewConn wraps c for the front (references for it and its buffers).
func NewConn(c *gonal.Connection) unsafe.Pointer {
	w := &Conn{C: c}
	w.rd = Save(&connBuf{c: c})
	w.sd = Save(&connBuf{c: c, send: true})
	return Save(w)
}

// DropConn releases the references of a connection (not the connection).
func DropConn(r unsafe.Pointer) {
	if w := ConnOf(r); w != nil {
		Unref(w.rd)
		Unref(w.sd)
		Unref(r)
	}
}

//export dce_NAL_config_set_nagle
func dce_NAL_config_set_nagle(enabled C.int) {
	defer RescueVoid()
	gonal.ConfigSetNagle(enabled != 0)
}

// An address and a buffer carry their reference's box, and a freed one
// waits for reuse with its reference (spares): C programs make and free
// them by the thousand, and a new one then costs no allocation and no
// reference-table operation, one short lock. The reference of a spare
// leads to a reset object: no one may use it (the front dropped the
// handle before the free), and the engine keeps no pointer to an address
// or a standalone buffer, so reuse is safe.
type boxedAddr struct {
	box   refBox
	a     gonal.Address
	spare bool // on the spare list (a second free is ignored)
}

type boxedBuf struct {
	box   refBox
	b     gonal.Buffer
	spare bool
}

var spares struct {
	sync.Mutex
	addrs []*boxedAddr
	bufs  []*boxedBuf
}

// spareMax bounds each list; beyond it a freed object drops its reference.
const spareMax = 1024

// pop takes the last spare of *l, or nil.
func pop[T any](l *[]*T) *T {
	spares.Lock()
	defer spares.Unlock()
	n := len(*l)
	if n == 0 {
		return nil
	}
	o := (*l)[n-1]
	*l = (*l)[:n-1]
	return o
}

// push keeps o as a spare unless *l is full (false: the caller drops it).
func push[T any](l *[]*T, o *T) bool {
	spares.Lock()
	defer spares.Unlock()
	if len(*l) >= spareMax {
		return false
	}
	*l = append(*l, o)
	return true
}

// newAddr is an address and its reference.
func newAddr() (*gonal.Address, unsafe.Pointer) {
	if testHook != nil {
		testHook()
	}
	if o := pop(&spares.addrs); o != nil {
		o.spare = false
		return &o.a, o.box.ref
	}
	o := new(boxedAddr)
	return &o.a, saveBoxed(&o.box, &o.a, o)
}

func newBuf() (*gonal.Buffer, unsafe.Pointer) {
	if testHook != nil {
		testHook()
	}
	if o := pop(&spares.bufs); o != nil {
		o.spare = false
		return &o.b, o.box.ref
	}
	o := new(boxedBuf)
	return &o.b, saveBoxed(&o.box, &o.b, o)
}

// drop ends the object behind r, freed already: kept as a spare with its
// reference, or the reference dropped. A spare's reference dropped again
// (a second free) changes nothing: it must not be on the list twice.
func drop(r unsafe.Pointer) {
	switch o := boxOf(r).(type) {
	case *boxedAddr:
		if o.spare {
			return
		}
		o.a, o.spare = gonal.Address{}, true
		if push(&spares.addrs, o) {
			return
		}
	case *boxedBuf:
		if o.spare {
			return
		}
		o.b, o.spare = gonal.Buffer{}, true
		if push(&spares.bufs, o) {
			return
		}
	}
	Unref(r)
}

// cview is the NUL-terminated C string at p as a Go string over the same
// bytes, for the length of a call (nothing may keep it): at most max+1
// bytes are read, enough for a check of its length to fail.
func cview(p *C.char, max int) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), max+1)
	for i, c := range b {
		if c == 0 {
			return unsafe.String(&b[0], i)
		}
	}
	return unsafe.String(&b[0], len(b))
}

//export dce_NAL_ADDRESS_new
func dce_NAL_ADDRESS_new() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	_, r := newAddr()
	return r
}

// A fresh front handle's first NAL_ADDRESS_create, in one crossing: a new
// address (*out), created; the result says whether the create succeeded
// (the address is made either way, in the state a failed create leaves):
// 0 it failed, 1 it succeeded, 2 it succeeded and the address is Fixed
// (the front may then create the same string again without the engine,
// as long as the size is at most gonal.BufferMaxSize).
// The reference goes out through out, not as the result: cgo checks a
// pointer result on every return (it is a C pointer, the check costs
// ~20 ns), and not what Go stores in C memory.
//
//export dce_NAL_ADDRESS_new_create
func dce_NAL_ADDRESS_new_create(s *C.char, size C.uint, out *unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	a, r := newAddr()
	*out = r
	if s == nil || !a.CreateView(cview(s, gonal.AddressMaxStrLen), uint32(size)) {
		return 0
	}
	if a.Fixed() {
		return 2
	}
	return 1
}

// Kinds the front frees in batches (numbered as the front's DCF_K_*): the
// ones that hold no descriptor, so a late free is not seen outside.
const (
	batchAddress = 1
	batchBuffer  = 5
)

// Engine objects of handles already freed, released in one crossing.
//
//export dce_free_batch
func dce_free_batch(kinds *C.int, rs *unsafe.Pointer, n C.int) {
	defer RescueVoid()
	ks := unsafe.Slice(kinds, int(n))
	for i, r := range unsafe.Slice(rs, int(n)) {
		switch ks[i] {
		case batchAddress:
			dce_NAL_ADDRESS_free(r)
		case batchBuffer:
			dce_NAL_BUFFER_free(r)
		}
	}
}

//export dce_NAL_ADDRESS_free
func dce_NAL_ADDRESS_free(r unsafe.Pointer) {
	defer RescueVoid()
	if a := addrOf(r); a != nil {
		a.Free()
		drop(r)
	}
}

//export dce_NAL_ADDRESS_reset
func dce_NAL_ADDRESS_reset(r unsafe.Pointer) {
	defer RescueVoid()
	addrOf(r).Reset()
}

//export dce_NAL_ADDRESS_create
func dce_NAL_ADDRESS_create(r unsafe.Pointer, s *C.char, size C.uint) (ret C.int) {
	defer Rescue(&ret, 0)
	a := addrOf(r)
	if a == nil || s == nil {
		return 0
	}
	return b2i(a.CreateView(cview(s, gonal.AddressMaxStrLen), uint32(size)))
}

//export dce_NAL_ADDRESS_get_def_buffer_size
func dce_NAL_ADDRESS_get_def_buffer_size(r unsafe.Pointer) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(addrOf(r).DefBufferSize())
}

//export dce_NAL_ADDRESS_set_def_buffer_size
func dce_NAL_ADDRESS_set_def_buffer_size(r unsafe.Pointer, n C.uint) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(addrOf(r).SetDefBufferSize(uint32(n)))
}

//export dce_NAL_ADDRESS_can_connect
func dce_NAL_ADDRESS_can_connect(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(addrOf(r).CanConnect())
}

//export dce_NAL_ADDRESS_can_listen
func dce_NAL_ADDRESS_can_listen(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(addrOf(r).CanListen())
}

//export dce_NAL_SELECTOR_new
func dce_NAL_SELECTOR_new() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	return Save(gonal.NewSelector())
}

//export dce_NAL_SELECTOR_new_fdselect
func dce_NAL_SELECTOR_new_fdselect() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	return Save(gonal.NewSelectorFdSelect())
}

//export dce_NAL_SELECTOR_new_fdpoll
func dce_NAL_SELECTOR_new_fdpoll() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	return Save(gonal.NewSelectorFdPoll())
}

//export dce_NAL_SELECTOR_free
func dce_NAL_SELECTOR_free(r unsafe.Pointer) {
	defer RescueVoid()
	if s := selOf(r); s != nil {
		s.Free()
		Unref(r)
	}
}

//export dce_NAL_SELECTOR_reset
func dce_NAL_SELECTOR_reset(r unsafe.Pointer) {
	defer RescueVoid()
	selOf(r).Reset()
}

// The errno of a failed select goes to *errp (0 if none), for the front to
// set in the calling thread.
//
//export dce_NAL_SELECTOR_select
func dce_NAL_SELECTOR_select(r unsafe.Pointer, usec C.ulong, use C.int, errp *C.int) (ret C.int) {
	defer Rescue(&ret, -1)
	procs.Enter()
	defer procs.Leave()
	s := selOf(r)
	if s == nil {
		return -1
	}
	n, err := s.Select(uint64(usec), use != 0)
	var en unix.Errno
	if err != nil && errp != nil && errors.As(err, &en) {
		*errp = C.int(en)
	}
	return C.int(n)
}

//export dce_NAL_SELECTOR_num_objects
func dce_NAL_SELECTOR_num_objects(r unsafe.Pointer) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(selOf(r).NumObjects())
}

//export dce_NAL_LISTENER_new
func dce_NAL_LISTENER_new() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	return Save(gonal.NewListener())
}

//export dce_NAL_LISTENER_free
func dce_NAL_LISTENER_free(r unsafe.Pointer) {
	defer RescueVoid()
	if l := listOf(r); l != nil {
		l.Free()
		Unref(r)
	}
}

//export dce_NAL_LISTENER_reset
func dce_NAL_LISTENER_reset(r unsafe.Pointer) {
	defer RescueVoid()
	listOf(r).Reset()
}

//export dce_NAL_LISTENER_create
func dce_NAL_LISTENER_create(r, a unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(listOf(r).Create(addrOf(a)))
}

//export dce_NAL_LISTENER_add_to_selector
func dce_NAL_LISTENER_add_to_selector(r, s unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(listOf(r).AddToSelector(selOf(s)))
}

//export dce_NAL_LISTENER_del_from_selector
func dce_NAL_LISTENER_del_from_selector(r unsafe.Pointer) {
	defer RescueVoid()
	listOf(r).DelFromSelector()
}

//export dce_NAL_LISTENER_finished
func dce_NAL_LISTENER_finished(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(listOf(r).Finished())
}

//export dce_NAL_LISTENER_set_fs_owner
func dce_NAL_LISTENER_set_fs_owner(r unsafe.Pointer, owner, group *C.char) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(listOf(r).SetFSOwner(cstr(owner), cstr(group)))
}

//export dce_NAL_LISTENER_set_fs_perms
func dce_NAL_LISTENER_set_fs_perms(r unsafe.Pointer, octal *C.char) (ret C.int) {
	defer Rescue(&ret, 0)
	if octal == nil {
		return 0
	}
	return b2i(listOf(r).SetFSPerms(C.GoString(octal)))
}

//export dce_NAL_CONNECTION_new
func dce_NAL_CONNECTION_new() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	return NewConn(gonal.NewConnection())
}

//export dce_NAL_CONNECTION_free
func dce_NAL_CONNECTION_free(r unsafe.Pointer) {
	defer RescueVoid()
	if c := connOf(r); c != nil {
		c.Free()
		DropConn(r)
	}
}

//export dce_NAL_CONNECTION_reset
func dce_NAL_CONNECTION_reset(r unsafe.Pointer) {
	defer RescueVoid()
	connOf(r).Reset()
}

//export dce_NAL_CONNECTION_create
func dce_NAL_CONNECTION_create(r, a unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).Create(addrOf(a)))
}

//export dce_NAL_CONNECTION_accept
func dce_NAL_CONNECTION_accept(r, l unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).Accept(listOf(l)))
}

//export dce_NAL_CONNECTION_set_size
func dce_NAL_CONNECTION_set_size(r unsafe.Pointer, n C.uint) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).SetSize(uint32(n)))
}

// The buffer references are handed out only while the connection is live
// (the front maps them to its own stable handles).
//
//export dce_NAL_CONNECTION_get_read
func dce_NAL_CONNECTION_get_read(r unsafe.Pointer) (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	if w := ConnOf(r); w != nil && w.C.Read() != nil {
		return w.rd
	}
	return nil
}

//export dce_NAL_CONNECTION_get_send
func dce_NAL_CONNECTION_get_send(r unsafe.Pointer) (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	if w := ConnOf(r); w != nil && w.C.Send() != nil {
		return w.sd
	}
	return nil
}

//export dce_NAL_CONNECTION_io
func dce_NAL_CONNECTION_io(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).IO())
}

//export dce_NAL_CONNECTION_is_established
func dce_NAL_CONNECTION_is_established(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).IsEstablished())
}

//export dce_NAL_CONNECTION_add_to_selector
func dce_NAL_CONNECTION_add_to_selector(r, s unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(connOf(r).AddToSelector(selOf(s)))
}

//export dce_NAL_CONNECTION_del_from_selector
func dce_NAL_CONNECTION_del_from_selector(r unsafe.Pointer) {
	defer RescueVoid()
	connOf(r).DelFromSelector()
}

//export dce_NAL_CONNECTION_create_pair
func dce_NAL_CONNECTION_create_pair(r1, r2 unsafe.Pointer, size C.uint) (ret C.int) {
	defer Rescue(&ret, 0)
	c1, c2 := connOf(r1), connOf(r2)
	if c1 == nil || c2 == nil {
		return 0
	}
	return b2i(c1.CreatePair(c2, uint32(size)))
}

//export dce_NAL_BUFFER_new
func dce_NAL_BUFFER_new() (ret unsafe.Pointer) {
	defer Rescue(&ret, nil)
	_, r := newBuf()
	return r
}

// The engine object of a front buffer handle whose size was set before
// (*out): it takes over the size bytes of C storage at mem (malloc'd by the
// front; freed by the buffer from now on), the first used of them written
// already. *out is left alone (the storage stays the front's) if the buffer
// refuses it.
//
//export dce_NAL_BUFFER_new_adopt
func dce_NAL_BUFFER_new_adopt(mem unsafe.Pointer, size, used C.uint, out *unsafe.Pointer) {
	defer RescueVoid()
	var st []byte
	if mem != nil {
		st = unsafe.Slice((*byte)(mem), int(size))
	}
	b, r := newBuf()
	if int(used) > len(st) || !b.Adopt(st, cfree) {
		drop(r)
		return
	}
	b.Wrote(uint32(used))
	*out = r
}

//export dce_NAL_BUFFER_free
func dce_NAL_BUFFER_free(r unsafe.Pointer) {
	defer RescueVoid()
	if b, ok := Restore(r).(*gonal.Buffer); ok {
		b.Free()
		drop(r)
	}
}

//export dce_NAL_BUFFER_reset
func dce_NAL_BUFFER_reset(r unsafe.Pointer) {
	defer RescueVoid()
	bufOf(r).Reset()
}

//export dce_NAL_BUFFER_set_size
func dce_NAL_BUFFER_set_size(r unsafe.Pointer, n C.uint) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(bufOf(r).SetSize(uint32(n)))
}

//export dce_NAL_BUFFER_empty
func dce_NAL_BUFFER_empty(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(bufOf(r).Empty())
}

//export dce_NAL_BUFFER_full
func dce_NAL_BUFFER_full(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(bufOf(r).Full())
}

//export dce_NAL_BUFFER_notempty
func dce_NAL_BUFFER_notempty(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(bufOf(r).NotEmpty())
}

//export dce_NAL_BUFFER_notfull
func dce_NAL_BUFFER_notfull(r unsafe.Pointer) (ret C.int) {
	defer Rescue(&ret, 0)
	return b2i(bufOf(r).NotFull())
}

//export dce_NAL_BUFFER_used
func dce_NAL_BUFFER_used(r unsafe.Pointer) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(bufOf(r).Used())
}

//export dce_NAL_BUFFER_unused
func dce_NAL_BUFFER_unused(r unsafe.Pointer) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(bufOf(r).Unused())
}

//export dce_NAL_BUFFER_size
func dce_NAL_BUFFER_size(r unsafe.Pointer) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(bufOf(r).Size())
}

// storage returns the C address of b's storage at offset off (NULL if none).
func storage(b *gonal.Buffer, off uint32) *C.uchar {
	s := b.Storage()
	if len(s) == 0 {
		return nil
	}
	return (*C.uchar)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), off))
}

//export dce_NAL_BUFFER_data
func dce_NAL_BUFFER_data(r unsafe.Pointer) (ret *C.uchar) {
	defer Rescue(&ret, nil)
	return storage(bufOf(r), 0)
}

//export dce_NAL_BUFFER_write_ptr
func dce_NAL_BUFFER_write_ptr(r unsafe.Pointer) (ret *C.uchar) {
	defer Rescue(&ret, nil)
	b := bufOf(r)
	return storage(b, b.Used())
}

//export dce_NAL_BUFFER_write
func dce_NAL_BUFFER_write(r unsafe.Pointer, p *C.uchar, n C.uint) (ret C.uint) {
	defer Rescue(&ret, 0)
	b := bufOf(r)
	if b == nil || p == nil || n == 0 {
		return 0
	}
	if u := b.Unused(); uint32(n) > u {
		n = C.uint(u)
	}
	return C.uint(b.Write(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))))
}

//export dce_NAL_BUFFER_read
func dce_NAL_BUFFER_read(r unsafe.Pointer, p *C.uchar, n C.uint) (ret C.uint) {
	defer Rescue(&ret, 0)
	b := bufOf(r)
	if b == nil {
		return 0
	}
	if u := b.Used(); uint32(n) > u {
		n = C.uint(u)
	}
	if p == nil {
		return C.uint(b.Discard(uint32(n)))
	}
	return C.uint(b.Read(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))))
}

//export dce_NAL_BUFFER_transfer
func dce_NAL_BUFFER_transfer(d, s unsafe.Pointer, max C.uint) (ret C.uint) {
	defer Rescue(&ret, 0)
	return C.uint(bufOf(d).TransferFrom(bufOf(s), uint32(max)))
}

//export dce_NAL_BUFFER_wrote
func dce_NAL_BUFFER_wrote(r unsafe.Pointer, n C.uint) {
	defer RescueVoid()
	bufOf(r).Wrote(uint32(n))
}

// SelOf returns the selector behind a reference (nil if none); for the dc layer.
func SelOf(r unsafe.Pointer) *gonal.Selector { return selOf(r) }

// Bufs returns the references of the connection's read and send buffers.
func (w *Conn) Bufs() (rd, sd unsafe.Pointer) { return w.rd, w.sd }
