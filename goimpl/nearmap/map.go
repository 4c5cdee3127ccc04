// SPDX-License-Identifier: Apache-2.0

package nearmap

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Map is the writer's side of a map: one process (dc_client) writes it,
// under its own lock, and any number read it.
type Map struct {
	mu   sync.Mutex
	b    []byte // the mapping, read-write
	n    int    // slots
	fd   int    // the memfd, read-write
	rofd int    // the same file opened read-only: what clients are handed
}

// New makes a map of at least slots entries (rounded up to an even
// number, at most 2^20) in a sealed memfd: nothing may be read from it
// until Reset(true) and Renew.
func New(slots int) (*Map, error) {
	if slots < 2 {
		slots = 2
	}
	slots = min(slots+slots%2, maxSlots)
	size := HeaderSize + slots*SlotSize
	fd, err := unix.MemfdCreate("distcache-nearmap", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("nearmap: memfd_create: %w", err)
	}
	m := &Map{n: slots, fd: fd, rofd: -1}
	fail := func(what string, err error) (*Map, error) {
		m.Close()
		return nil, fmt.Errorf("nearmap: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	if m.b, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap", err)
	}
	// Sealed: its size cannot change under a reader (a shrunk file would
	// fault it), and no one can write it but through this mapping (a
	// client could otherwise open /proc/self/fd/N of its read-only
	// descriptor for writing and change what the other clients read).
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fail("sealing", err)
	}
	if m.rofd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return fail("reopening read-only", err)
	}
	copy(m.b[OffMagic:], Magic)
	ne.PutUint32(m.b[OffVersion:], Version)
	ne.PutUint32(m.b[OffSlots:], uint32(slots))
	ne.PutUint32(m.b[OffSlotSize:], SlotSize)
	ne.PutUint32(m.b[OffMaxData:], MaxData)
	atomic.StoreUint64(word64(m.b, OffGen), 1)
	return m, nil
}

// ReadFD is the descriptor to hand to readers: the map opened read-only
// (-1 once closed).
func (m *Map) ReadFD() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rofd
}

// SendTo writes msg to the unix socket fd without waiting, with the map's
// read-only descriptor (SCM_RIGHTS): what sendmsg returns; EBADF once
// the map is closed.
func (m *Map) SendTo(fd int, msg []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rofd < 0 {
		return 0, syscall.EBADF
	}
	rights := syscall.UnixRights(m.rofd)
	for {
		n, err := syscall.SendmsgN(fd, msg, rights, nil, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// Bytes is the mapping (for tests).
func (m *Map) Bytes() []byte { return m.b }

// Slots is the number of entries the map can hold.
func (m *Map) Slots() int { return m.n }

func (m *Map) slot(i int) []byte { return m.b[HeaderSize+i*SlotSize : HeaderSize+(i+1)*SlotSize] }

// bucket is the first slot of id's bucket.
func (m *Map) bucket(id []byte) int { return int(Hash(id)%uint64(m.n/2)) * 2 }

// holds reports whether slot s holds id's entry of generation gen.
func holds(s, id []byte, gen uint64) bool {
	il := int(ne.Uint32(s[SlotIDLen:]))
	return il == len(id) && ne.Uint64(s[SlotGen:]) == gen && string(s[SlotID:SlotID+il]) == string(id)
}

// find is the slot of id's bucket that holds its entry of generation
// gen, or -1 (m.mu held).
func (m *Map) find(id []byte, gen uint64) int {
	b := m.bucket(id)
	for i := b; i < b+2; i++ {
		if holds(m.slot(i), id, gen) {
			return i
		}
	}
	return -1
}

// change has f write slot s under its sequence count, odd meanwhile, so
// that a reader that copied the slot while f ran sees the count move.
func change(s []byte, f func()) {
	seq := word32(s, SlotSeq)
	atomic.AddUint32(seq, 1)
	f()
	atomic.AddUint32(seq, 1)
}

// Put writes id's entry, its data ending at expires (Mono), in place of
// any entry of id, of an empty or older slot of its bucket, or of the
// one that ends first; an id or data too large for a slot only drops
// id's entry.
func (m *Map) Put(id, data []byte, expires int64) {
	if m == nil {
		return
	}
	if len(id) < 1 || len(id) > MaxID || len(data) < 1 || len(data) > MaxData {
		m.Remove(id)
		return
	}
	g, ok := m.open()
	if !ok {
		return
	}
	defer m.mu.Unlock()
	gen := atomic.LoadUint64(g)
	pick := m.find(id, gen)
	if pick < 0 {
		b := m.bucket(id)
		s0, s1 := m.slot(b), m.slot(b+1)
		free := func(s []byte) bool { return ne.Uint32(s[SlotIDLen:]) == 0 || ne.Uint64(s[SlotGen:]) != gen }
		switch {
		case free(s0):
			pick = b
		case free(s1):
			pick = b + 1
		case int64(ne.Uint64(s1[SlotExpires:])) < int64(ne.Uint64(s0[SlotExpires:])):
			pick = b + 1
		default:
			pick = b
		}
	}
	s := m.slot(pick)
	change(s, func() {
		ne.PutUint32(s[SlotIDLen:], uint32(len(id)))
		ne.PutUint32(s[SlotDataLen:], uint32(len(data)))
		ne.PutUint64(s[SlotGen:], gen)
		ne.PutUint64(s[SlotExpires:], uint64(expires))
		copy(s[SlotID:SlotID+MaxID], id)
		copy(s[SlotData:], data)
		ne.PutUint64(s[SlotSum:], Sum(s, id, data))
	})
}

// open takes the writer's lock and returns the generation word, unless m
// is nil or closed (ok false, the lock not held).
func (m *Map) open() (gen *uint64, ok bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	if m.b == nil {
		m.mu.Unlock()
		return nil, false
	}
	return word64(m.b, OffGen), true
}

// Holds reports whether the map has an entry for id in its current
// generation (live or not).
func (m *Map) Holds(id []byte) bool {
	g, ok := m.open()
	if !ok {
		return false
	}
	defer m.mu.Unlock()
	return m.find(id, atomic.LoadUint64(g)) >= 0
}

// Remove drops id's entry.
func (m *Map) Remove(id []byte) {
	if len(id) < 1 || len(id) > MaxID {
		return
	}
	g, ok := m.open()
	if !ok {
		return
	}
	defer m.mu.Unlock()
	if i := m.find(id, atomic.LoadUint64(g)); i >= 0 {
		s := m.slot(i)
		change(s, func() {
			ne.PutUint32(s[SlotIDLen:], 0)
			ne.PutUint32(s[SlotDataLen:], 0)
			ne.PutUint64(s[SlotSum:], 0)
		})
	}
}

// Reset forgets every entry at once (a new generation); live says
// whether entries may be read from now on (a lease permitting), else
// nothing may be read until the next Reset(true).
func (m *Map) Reset(live bool) {
	g, ok := m.open()
	if !ok {
		return
	}
	defer m.mu.Unlock()
	switch v := atomic.LoadUint64(g); {
	case live:
		atomic.StoreUint64(g, (v|1)+1)
	case v&1 == 0:
		atomic.StoreUint64(g, v+1)
	}
}

// Flush forgets every entry at once if entries may be read, and leaves
// the map as it is otherwise (unread until a Reset(true)).
func (m *Map) Flush() {
	g, ok := m.open()
	if !ok {
		return
	}
	defer m.mu.Unlock()
	if atomic.LoadUint64(g)&1 == 0 {
		atomic.StoreUint64(g, atomic.LoadUint64(g)+2)
	}
}

// Live reports whether entries may be read (a lease permitting).
func (m *Map) Live() bool {
	g, ok := m.open()
	if !ok {
		return false
	}
	defer m.mu.Unlock()
	return atomic.LoadUint64(g)&1 == 0
}

// Renew lets readers read until the time until (Mono), which must not be
// later than the writer can vouch for what the map holds.
func (m *Map) Renew(until int64) {
	if _, ok := m.open(); ok {
		atomic.StoreUint64(word64(m.b, OffLease), uint64(until))
		m.mu.Unlock()
	}
}

// Lease is how long a renewal lets readers read.
const Lease = leaseDefault

// Renewals calls renew every quarter of a Lease until stop is closed,
// then closes done: the writer's loop that keeps a map leased.
func Renewals(stop <-chan struct{}, done chan<- struct{}, renew func()) {
	defer close(done)
	t := time.NewTicker(Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		renew()
	}
}

// Close makes the map unreadable and releases it; readers that hold it
// read nothing more from it.
func (m *Map) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b != nil {
		atomic.StoreUint64(word64(m.b, OffGen), atomic.LoadUint64(word64(m.b, OffGen))|1)
		atomic.StoreUint64(word64(m.b, OffLease), 0)
		unix.Munmap(m.b)
		m.b = nil
	}
	for _, fd := range []*int{&m.fd, &m.rofd} {
		if *fd >= 0 {
			syscall.Close(*fd)
			*fd = -1
		}
	}
	return nil
}

// Now is the map's clock now.
func Now() int64 { return Mono(time.Now()) }
