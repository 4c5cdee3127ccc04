// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// modelCache is the original default cache's behaviour written the slow,
// obvious way: a list in insertion order, scanned for everything.
type modelCache struct {
	max      int
	maxBytes int64
	seq      uint64
	items    []modelEntry
}

type modelEntry struct {
	id, data []byte
	expiry   int64 // µs
	seq      uint64
}

func (m *modelCache) purge(now int64) {
	kept := m.items[:0]
	for _, e := range m.items {
		if now <= e.expiry {
			kept = append(kept, e)
		}
	}
	m.items = kept
}

func (m *modelCache) find(id []byte) int {
	for i, e := range m.items {
		if bytes.Equal(e.id, id) {
			return i
		}
	}
	return -1
}

// dropFirst removes the entry closest to expiry (ties: added first).
func (m *modelCache) dropFirst() {
	best := 0
	for i, e := range m.items {
		b := m.items[best]
		if e.expiry < b.expiry || (e.expiry == b.expiry && e.seq < b.seq) {
			best = i
		}
	}
	m.items = append(m.items[:best], m.items[best+1:]...)
}

// classSize is the allocator's block size for n bytes, what an entry's id
// and data are charged.
func classSize(n int) int64 { return int64(cap(append([]byte(nil), make([]byte, n)...))) }

func (m *modelCache) bytes() (n int64) {
	for _, e := range m.items {
		n += classSize(len(e.id)+len(e.data)) + EntryOverhead
	}
	return n
}

func (m *modelCache) add(now int64, timeout uint32, id, data []byte) bool {
	m.purge(now)
	size := classSize(len(id)+len(data)) + EntryOverhead
	if m.find(id) >= 0 || (m.maxBytes > 0 && size > m.maxBytes) {
		return false
	}
	if len(m.items) >= m.max {
		for n := max(m.max/30, 1); n > 0 && len(m.items) > 0; n-- {
			m.dropFirst()
		}
	}
	for m.maxBytes > 0 && m.bytes()+size > m.maxBytes && len(m.items) > 0 {
		m.dropFirst()
	}
	m.seq++
	m.items = append(m.items, modelEntry{bytes.Clone(id), bytes.Clone(data), (now/1000 + int64(timeout)) * 1000, m.seq})
	return true
}

// FuzzCacheModel runs a script of operations on a one-shard cache and on
// modelCache and requires identical answers throughout: expiry, duplicate
// refusal, eviction order under the count and byte bounds, removal.
func FuzzCacheModel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add(bytes.Repeat([]byte{0, 7, 0x30, 1, 7, 0x31}, 40))
	f.Add(bytes.Repeat([]byte{0x80, 0x10, 0x41, 0x02, 0x10}, 60))
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) == 0 {
			return
		}
		// Small bounds so that short scripts reach eviction; 64 has a
		// batch of 2.
		m := &modelCache{max: []int{3, 5, 8, 64}[script[0]>>1&3]}
		if script[0]&1 != 0 {
			m.maxBytes = 4 * (EntryOverhead + 20)
		}
		c := New(Config{MaxSessions: m.max, MaxBytes: m.maxBytes, Shards: 1})
		now := t0
		buf := make([]byte, 64)
		for i := 1; i+1 < len(script); i += 2 {
			op, arg := script[i], script[i+1]
			k := []byte(fmt.Sprintf("k%d", arg%80))
			us := now.UnixMicro()
			var got, want any
			switch op % 6 {
			case 0, 1: // add; the op byte also picks the lifetime and size
				timeout := []uint32{0, 1, 2, 5, 100, 1000}[int(op/8)%6]
				data := bytes.Repeat([]byte{arg}, 1+int(op/2)%37)
				got, want = c.Add(now, timeout, k, data), m.add(us, timeout, k, data)
			case 2:
				n := c.Get(now, k, buf)
				got = string(buf[:min(n, len(buf))])
				m.purge(us)
				if j := m.find(k); j >= 0 {
					want = string(m.items[j].data)
				} else {
					want = ""
				}
			case 3:
				got = c.Remove(now, k)
				m.purge(us)
				j := m.find(k)
				if want = j >= 0; j >= 0 {
					m.items = append(m.items[:j], m.items[j+1:]...)
				}
			case 4:
				got = c.Have(now, k)
				m.purge(us)
				want = m.find(k) >= 0
			case 5: // time passes: 0..255 × 37µs
				now = now.Add(time.Duration(arg) * 37 * time.Microsecond)
				got, want = c.NumItems(now), func() int { m.purge(now.UnixMicro()); return len(m.items) }()
			}
			if got != want {
				t.Fatalf("step %d (op %d arg %d): cache %v, model %v", i/2, op%6, arg, got, want)
			}
		}
		if st := c.Stats(); st.Items != int64(len(m.items)) || st.Bytes != m.bytes() {
			t.Fatalf("stats %+v, model %d items %d bytes", st, len(m.items), m.bytes())
		}
	})
}
