// SPDX-License-Identifier: Apache-2.0

package nearmap

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func newLive(t *testing.T, slots int) (*Map, int64) {
	t.Helper()
	m, err := New(slots)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	now := Now()
	m.Reset(true)
	m.Renew(now + int64(Lease))
	return m, now
}

func TestPutLookupRemove(t *testing.T) {
	m, now := newLive(t, 64)
	id, data := []byte("session-1"), []byte("the data")
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("an empty map answered")
	}
	m.Put(id, data, now+int64(Lease))
	got, ok := Lookup(m.Bytes(), id, now, []byte("x"))
	if !ok || string(got) != "x"+string(data) {
		t.Fatalf("Lookup = %q, %v", got, ok)
	}
	if _, ok := Lookup(m.Bytes(), []byte("session-2"), now, nil); ok {
		t.Fatal("another id answered")
	}
	m.Put(id, []byte("newer"), now+int64(Lease))
	if got, _ := Lookup(m.Bytes(), id, now, nil); string(got) != "newer" {
		t.Fatalf("after a second Put: %q", got)
	}
	m.Remove(id)
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("a removed entry answered")
	}
}

func TestTimesAndGenerations(t *testing.T) {
	m, now := newLive(t, 64)
	id := []byte("id")
	m.Put(id, []byte("d"), now+1000)
	if _, ok := Lookup(m.Bytes(), id, now+999, nil); !ok {
		t.Fatal("a live entry did not answer")
	}
	if _, ok := Lookup(m.Bytes(), id, now+1000, nil); ok {
		t.Fatal("an entry answered at its end")
	}
	m.Put(id, []byte("d"), now+int64(2*Lease))
	if _, ok := Lookup(m.Bytes(), id, now+int64(Lease), nil); ok {
		t.Fatal("answered at the end of the lease")
	}
	m.Reset(false)
	if m.Live() {
		t.Fatal("Live after Reset(false)")
	}
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("answered while not live")
	}
	m.Reset(true)
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("an entry of an earlier generation answered")
	}
	m.Put(id, []byte("d"), now+1000)
	m.Reset(true) // a flush
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("answered after a flush")
	}
}

func TestBucketsAndSizes(t *testing.T) {
	m, now := newLive(t, 2) // one bucket: every id shares it
	end := now + int64(Lease)
	m.Put([]byte("a"), []byte("A"), end-10)
	m.Put([]byte("b"), []byte("B"), end-20)
	for _, id := range []string{"a", "b"} {
		if _, ok := Lookup(m.Bytes(), []byte(id), now, nil); !ok {
			t.Fatalf("%s missing from a bucket of two", id)
		}
	}
	m.Put([]byte("c"), []byte("C"), end)
	if _, ok := Lookup(m.Bytes(), []byte("b"), now, nil); ok {
		t.Fatal("the entry that ends first was kept")
	}
	for _, id := range []string{"a", "c"} {
		if _, ok := Lookup(m.Bytes(), []byte(id), now, nil); !ok {
			t.Fatalf("%s missing", id)
		}
	}
	big := bytes.Repeat([]byte{7}, MaxData)
	m.Put([]byte("a"), big, end)
	if got, ok := Lookup(m.Bytes(), []byte("a"), now, nil); !ok || !bytes.Equal(got, big) {
		t.Fatal("an entry of MaxData bytes did not answer")
	}
	m.Put([]byte("a"), append(big, 7), end)
	if _, ok := Lookup(m.Bytes(), []byte("a"), now, nil); ok {
		t.Fatal("a session too large for a slot left the older entry")
	}
	long := bytes.Repeat([]byte{1}, MaxID+1)
	m.Put(long, []byte("x"), end)
	if _, ok := Lookup(m.Bytes(), long, now, nil); ok {
		t.Fatal("an id over MaxID answered")
	}
}

func TestCorruptSlotIsMiss(t *testing.T) {
	m, now := newLive(t, 64)
	id := []byte("id")
	m.Put(id, []byte("data"), now+int64(Lease))
	s := m.slot(m.bucket(id))
	s[SlotData] ^= 1 // as a torn copy would read it
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("a slot whose sum is wrong answered")
	}
	s[SlotData] ^= 1
	if _, ok := Lookup(m.Bytes(), id, now, nil); !ok {
		t.Fatal("the mended slot did not answer")
	}
	*word32(s, SlotSeq) |= 1 // being written
	if _, ok := Lookup(m.Bytes(), id, now, nil); ok {
		t.Fatal("a slot being written answered")
	}
}

// The read-only descriptor maps the writer's entries and cannot be
// mapped for writing, nor the file resized.
func TestReadFD(t *testing.T) {
	m, now := newLive(t, 16)
	m.Put([]byte("id"), []byte("data"), now+int64(Lease))
	size := HeaderSize + m.Slots()*SlotSize
	ro, err := unix.Mmap(m.ReadFD(), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(ro)
	if got, ok := Lookup(ro, []byte("id"), now, nil); !ok || string(got) != "data" {
		t.Fatalf("through the read-only mapping: %q %v", got, ok)
	}
	if _, err := unix.Mmap(m.ReadFD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		t.Fatal("the read-only descriptor mapped for writing")
	}
	if err := unix.Ftruncate(m.fd, 4096); err == nil {
		t.Fatal("the sealed file shrank")
	}
	seals, err := unix.FcntlInt(uintptr(m.ReadFD()), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		t.Fatalf("seals %#x, %v", seals, err)
	}
}

func TestCloseStopsReaders(t *testing.T) {
	m, now := newLive(t, 16)
	m.Put([]byte("id"), []byte("data"), now+int64(Lease))
	size := HeaderSize + m.Slots()*SlotSize
	ro, err := unix.Mmap(m.ReadFD(), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(ro)
	m.Close()
	if _, ok := Lookup(ro, []byte("id"), now, nil); ok {
		t.Fatal("a closed map answered")
	}
	m.Put([]byte("id"), []byte("data"), now) // no effect, no fault
	m.Renew(now)
}

func TestManyIDs(t *testing.T) {
	m, now := newLive(t, 4096)
	end := now + int64(Lease)
	for i := range 1000 {
		m.Put(fmt.Appendf(nil, "id-%d", i), fmt.Appendf(nil, "data-%d", i), end)
	}
	found := 0
	for i := range 1000 {
		got, ok := Lookup(m.Bytes(), fmt.Appendf(nil, "id-%d", i), now, nil)
		if ok {
			found++
			if string(got) != fmt.Sprintf("data-%d", i) {
				t.Fatalf("id-%d: %q", i, got)
			}
		}
	}
	if found < 950 {
		t.Fatalf("only %d of 1000 ids in a map of 4096 slots", found)
	}
}

// No one can write the map but through the writer's mapping: not by
// opening the read-only descriptor again for writing, not by write(2).
func TestNoOtherWriter(t *testing.T) {
	m, now := newLive(t, 8)
	m.Put([]byte("id"), []byte("data"), now+int64(Lease))
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", m.ReadFD()), unix.O_RDWR, 0)
	if err == nil {
		defer unix.Close(fd)
		if _, err := unix.Pwrite(fd, []byte("X"), HeaderSize+SlotData); err == nil {
			t.Fatal("wrote the map through a descriptor reopened for writing")
		}
		if b, err := unix.Mmap(fd, 0, HeaderSize+m.Slots()*SlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
			unix.Munmap(b)
			t.Fatal("mapped the map for writing through a descriptor reopened for writing")
		}
	}
	if _, err := unix.Pwrite(m.fd, []byte("X"), HeaderSize+SlotData); err == nil {
		t.Fatal("wrote the map through the writer's own descriptor")
	}
	if got, ok := Lookup(m.Bytes(), []byte("id"), now, nil); !ok || string(got) != "data" {
		t.Fatalf("the writer's mapping no longer works: %q %v", got, ok)
	}
	m.Put([]byte("id2"), []byte("data2"), now+int64(Lease))
	if _, ok := Lookup(m.Bytes(), []byte("id2"), now, nil); !ok {
		t.Fatal("the writer cannot write after the seal")
	}
}
