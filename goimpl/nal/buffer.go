// SPDX-License-Identifier: Apache-2.0

package nal

import "sync"

// Allocator hooks: where Buffer storage comes from. The default is Go
// memory; the cgo layer points them at C malloc/free so that C may keep the
// pointers returned by Data and WritePtr.
var (
	allocMu   sync.RWMutex
	allocFunc = func(n int) []byte { return make([]byte, n) }
	freeFunc  = func([]byte) {}
)

// SetAllocator replaces the function that provides Buffer storage and the
// one that releases it. alloc(n) must return a slice of length n (it may
// fail by returning nil, which makes SetSize fail); free receives exactly
// the slice alloc returned. A nil alloc restores the Go default. Storage
// already allocated is released with the free function in force when it
// was allocated. Call it before creating objects (e.g. in an init).
func SetAllocator(alloc func(n int) []byte, free func(b []byte)) {
	allocMu.Lock()
	defer allocMu.Unlock()
	if alloc == nil {
		allocFunc = func(n int) []byte { return make([]byte, n) }
		freeFunc = func([]byte) {}
		return
	}
	if free == nil {
		free = func([]byte) {}
	}
	allocFunc, freeFunc = alloc, free
}

func allocate(n int) ([]byte, func([]byte)) {
	allocMu.RLock()
	a, f := allocFunc, freeFunc
	allocMu.RUnlock()
	b := a(n)
	if len(b) < n {
		if b != nil {
			f(b)
		}
		return nil, nil
	}
	return b[:n:n], f
}

// Buffer is a bounded FIFO byte buffer (NAL_BUFFER): a contiguous array of
// Size bytes whose first Used bytes are the contents. Data always starts
// at offset 0; reads shift the remainder down. The zero value is an empty
// buffer of size 0 with no storage, like NewBuffer().
//
// Not safe for concurrent use.
type Buffer struct {
	store []byte       // len == size; nil when size == 0
	free  func([]byte) // releases store
	used  int
}

// NewBuffer returns a buffer of size 0 (NAL_BUFFER_new).
func NewBuffer() *Buffer { return &Buffer{} }

// Free releases the storage (NAL_BUFFER_free). Safe on nil and twice; the
// buffer is then an empty buffer of size 0.
func (b *Buffer) Free() {
	if b == nil {
		return
	}
	b.release()
}

func (b *Buffer) release() {
	if b.store != nil && b.free != nil {
		b.free(b.store)
	}
	b.store, b.free, b.used = nil, nil, 0
}

// Reset empties the buffer; size and storage are kept (NAL_BUFFER_reset).
func (b *Buffer) Reset() {
	if b != nil {
		b.used = 0
	}
}

// SetSize changes the capacity (NAL_BUFFER_set_size). The same size is a
// no-op that keeps the data; a size above BufferMaxSize fails; any other
// size reallocates and discards the contents (EDGES E-39). Size 0 frees
// the storage. Returns false if the size is too big or allocation failed
// (the buffer then has size 0).
func (b *Buffer) SetSize(size uint32) bool {
	if b == nil || size > BufferMaxSize {
		return false
	}
	if int(size) == len(b.store) {
		return true
	}
	b.release()
	if size == 0 {
		return true
	}
	st, f := allocate(int(size))
	if st == nil {
		return false
	}
	b.store, b.free = st, f
	return true
}

// Adopt gives a buffer of size 0 the storage st: its size becomes len(st)
// (at most BufferMaxSize), empty, and free releases st when the buffer lets
// it go (a later SetSize, Free). The cgo layer hands over C memory its
// front allocated when a C program set the size. False (st not taken) if
// the buffer has storage or st is too big.
func (b *Buffer) Adopt(st []byte, free func([]byte)) bool {
	if b == nil || b.store != nil || len(st) > BufferMaxSize {
		return false
	}
	if len(st) > 0 {
		b.store, b.free, b.used = st[:len(st):len(st)], free, 0
	}
	return true
}

// Empty reports Used() == 0.
func (b *Buffer) Empty() bool { return b == nil || b.used == 0 }

// Full reports Used() == Size() (a 0-size buffer is empty and full).
func (b *Buffer) Full() bool { return b == nil || b.used == len(b.store) }

// NotEmpty is !Empty().
func (b *Buffer) NotEmpty() bool { return !b.Empty() }

// NotFull is !Full().
func (b *Buffer) NotFull() bool { return !b.Full() }

// Used returns the number of buffered bytes.
func (b *Buffer) Used() uint32 {
	if b == nil {
		return 0
	}
	return uint32(b.used)
}

// Unused returns Size() - Used().
func (b *Buffer) Unused() uint32 {
	if b == nil {
		return 0
	}
	return uint32(len(b.store) - b.used)
}

// Size returns the capacity.
func (b *Buffer) Size() uint32 {
	if b == nil {
		return 0
	}
	return uint32(len(b.store))
}

// Data returns the buffered bytes (NAL_BUFFER_data): a slice of the
// storage starting at offset 0, nil if the buffer has no storage. Valid
// until the next size change; contents shift on every read.
func (b *Buffer) Data() []byte {
	if b == nil || b.store == nil {
		return nil
	}
	return b.store[:b.used]
}

// Storage returns the whole storage array (length Size()), nil if none.
// Its first element is the stable address behind Data and WritePtr (for
// the cgo layer); it changes only when the size changes.
func (b *Buffer) Storage() []byte {
	if b == nil {
		return nil
	}
	return b.store
}

// WritePtr returns the free tail of the storage (NAL_BUFFER_write_ptr):
// the caller may fill it and then declare the bytes with Wrote. Its
// length is Unused(); nil if the buffer has no storage.
func (b *Buffer) WritePtr() []byte {
	if b == nil || b.store == nil {
		return nil
	}
	return b.store[b.used:]
}

// Wrote declares n bytes written at WritePtr (NAL_BUFFER_wrote). It
// refuses (returns false, nothing changes) if n > Unused(); the original
// asserted (EDGES E-7).
func (b *Buffer) Wrote(n uint32) bool {
	if b == nil || uint64(n) > uint64(len(b.store)-b.used) {
		return false
	}
	b.used += int(n)
	return true
}

// Write appends min(len(p), Unused()) bytes of p and returns that count
// (NAL_BUFFER_write).
func (b *Buffer) Write(p []byte) uint32 {
	if b == nil {
		return 0
	}
	n := copy(b.store[b.used:], p)
	b.used += n
	return uint32(n)
}

// Read removes min(len(p), Used()) bytes from the head into p and returns
// the count (NAL_BUFFER_read with a non-NULL pointer).
func (b *Buffer) Read(p []byte) uint32 {
	if b == nil {
		return 0
	}
	n := copy(p, b.store[:b.used])
	b.consume(n)
	return uint32(n)
}

// Discard removes min(n, Used()) bytes from the head and returns the count
// (NAL_BUFFER_read with a NULL pointer).
func (b *Buffer) Discard(n uint32) uint32 {
	if b == nil {
		return 0
	}
	k := b.used
	if uint64(n) < uint64(k) {
		k = int(n)
	}
	b.consume(k)
	return uint32(k)
}

func (b *Buffer) consume(n int) {
	if n <= 0 {
		return
	}
	copy(b.store, b.store[n:b.used])
	b.used -= n
}

// TransferFrom moves min(Unused(), src.Used(), max) bytes from the head of
// src to the tail of b; max == 0 means no limit (NAL_BUFFER_transfer(b,
// src, max)). Returns the count moved. b == src moves nothing.
func (b *Buffer) TransferFrom(src *Buffer, max uint32) uint32 {
	if b == nil || src == nil || b == src {
		return 0
	}
	n := len(b.store) - b.used
	if src.used < n {
		n = src.used
	}
	if max != 0 && uint64(max) < uint64(n) {
		n = int(max)
	}
	copy(b.store[b.used:], src.store[:n])
	b.used += n
	src.consume(n)
	return uint32(n)
}
