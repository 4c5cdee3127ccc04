// SPDX-License-Identifier: Apache-2.0

package nearmap

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The layout of a map. Numbers are in the host's byte order (the map never
// leaves the host); every field is naturally aligned. capi/gen writes
// these constants into the C front's header (wire_gen.h, DCW_NM_*).
const (
	Version = 1

	// The header, at offset 0.
	HeaderSize  = 128
	OffMagic    = 0  // Magic, 8 bytes
	OffVersion  = 8  // uint32: Version
	OffSlots    = 12 // uint32: the number of slots, even: buckets of two
	OffSlotSize = 16 // uint32: SlotSize
	OffMaxData  = 20 // uint32: MaxData
	OffGen      = 32 // uint64: the generation; odd while nothing may be read
	OffLease    = 40 // int64: CLOCK_MONOTONIC ns until which entries may be read

	// A slot, at HeaderSize + i*SlotSize.
	SlotSize     = 2048
	SlotSeq      = 0  // uint32: odd while the writer changes the slot
	SlotIDLen    = 4  // uint32: 0 for an empty slot
	SlotDataLen  = 8  // uint32
	SlotGen      = 16 // uint64: the generation the entry was written in
	SlotExpires  = 24 // int64: CLOCK_MONOTONIC ns at which the entry ends
	SlotSum      = 32 // uint64: Sum of the entry
	SlotID       = 40 // MaxID bytes
	MaxID        = 64
	SlotData     = SlotID + MaxID
	MaxData      = SlotSize - SlotData
	sumFrom      = SlotIDLen // Sum covers the slot's bytes [sumFrom, SlotSum) first
	fnvOffset    = 14695981039346656037
	fnvPrime     = 1099511628211
	maxSlots     = 1 << 20
	leaseDefault = 100 * time.Millisecond
)

// Magic starts a map.
const Magic = "DCNEARM1"

// ProbeAnswer is the payload of the answer to a GET of proto.NearMapID
// that hands over the map, whose read-only descriptor comes with it
// (SCM_RIGHTS).
const ProbeAnswer = Magic

// Hash is the FNV-1a hash of id; the bucket of id is Hash(id) % (slots/2).
func Hash(id []byte) uint64 { return fnv(fnvOffset, id) }

func fnv(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// Sum is the check of a slot's entry: FNV-1a over the slot's bytes from
// SlotIDLen up to SlotSum (lengths, generation, expiry, the padding
// zero), then the id and the data. A reader that copied a slot while it
// was being written, on a machine whose stores may be seen out of order,
// finds the sum wrong.
func Sum(slot []byte, id, data []byte) uint64 {
	return fnv(fnv(fnv(fnvOffset, slot[sumFrom:SlotSum]), id), data)
}

// Mono is t on the clock the map's times are on (CLOCK_MONOTONIC, in
// nanoseconds), for a t read from time.Now (whose monotonic reading is
// that clock, from another origin).
func Mono(t time.Time) int64 { return monoBase + int64(t.Sub(monoAt)) }

var monoAt, monoBase = monoPair()

func monoPair() (time.Time, int64) {
	var ts unix.Timespec
	t := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("nearmap: CLOCK_MONOTONIC: " + err.Error())
	}
	return t, ts.Nano()
}

// word32 and word64 are the atomically accessed words of b at off.
func word32(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func word64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

var ne = binary.NativeEndian

// Lookup reads id's entry from a map's bytes as the C front does
// (capi/front/nearmap.c, the reader that matters; this one is for tests
// and Go readers): its data appended to dst and true when the map may be
// read at now (CLOCK_MONOTONIC ns) and holds a whole, live entry for id.
func Lookup(m []byte, id []byte, now int64, dst []byte) ([]byte, bool) {
	if len(m) < HeaderSize || len(id) < 1 || len(id) > MaxID {
		return dst, false
	}
	gen := atomic.LoadUint64(word64(m, OffGen))
	if gen&1 != 0 || now >= int64(atomic.LoadUint64(word64(m, OffLease))) {
		return dst, false
	}
	n := int(ne.Uint32(m[OffSlots:]))
	if n < 2 || n%2 != 0 || len(m) < HeaderSize+n*SlotSize {
		return dst, false
	}
	b := int(Hash(id)%uint64(n/2)) * 2
	var tmp [SlotSize]byte
	for i := b; i < b+2; i++ {
		s := m[HeaderSize+i*SlotSize : HeaderSize+(i+1)*SlotSize]
		seq := atomic.LoadUint32(word32(s, SlotSeq))
		if seq&1 != 0 {
			continue
		}
		copy(tmp[:], s)
		if atomic.LoadUint32(word32(s, SlotSeq)) != seq {
			continue
		}
		il, dl := int(ne.Uint32(tmp[SlotIDLen:])), int(ne.Uint32(tmp[SlotDataLen:]))
		if il != len(id) || dl < 1 || dl > MaxData || ne.Uint64(tmp[SlotGen:]) != gen ||
			int64(ne.Uint64(tmp[SlotExpires:])) <= now || string(tmp[SlotID:SlotID+il]) != string(id) {
			continue
		}
		d := tmp[SlotData : SlotData+dl]
		if Sum(tmp[:], id, d) != ne.Uint64(tmp[SlotSum:]) {
			continue
		}
		if atomic.LoadUint64(word64(m, OffGen)) != gen {
			return dst, false
		}
		return append(dst, d...), true
	}
	return dst, false
}

// NativeLease is the lease of a map's bytes (for tests).
func NativeLease(m []byte) int64 { return int64(atomic.LoadUint64(word64(m, OffLease))) }
