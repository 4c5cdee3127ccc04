// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"net"
	"testing"
	"time"
)

// closeCount is a sock that counts its closes.
type closeCount struct{ n *int }

func (c closeCount) Close() error         { *c.n++; return nil }
func (c closeCount) RemoteAddr() net.Addr { return nil }

// The registry's list: admitting, leaving (twice, or after an eviction)
// and evicting keep the count and the members right, and an eviction at
// the cap picks the victim among the members only.
func TestRegistryMembers(t *testing.T) {
	var r registry
	now := time.Now()
	old := now.Add(-time.Hour)
	var closes [4]int
	cs := make([]*connState, 4)
	for i := range cs {
		cs[i] = &connState{raw: closeCount{&closes[i]}}
		cs[i].set(stateIdle, old)
		if _, ok := r.admit(cs[i], 0, now, time.Second); !ok {
			t.Fatalf("admit %d refused without a cap", i)
		}
	}
	members := func() map[*connState]bool {
		m := map[*connState]bool{}
		r.each(func(c *connState) {
			if m[c] {
				t.Fatal("a connection listed twice")
			}
			m[c] = true
		})
		if len(m) != r.n {
			t.Fatalf("%d listed, count %d", len(m), r.n)
		}
		return m
	}
	if m := members(); len(m) != 4 {
		t.Fatalf("%d members, want 4", len(m))
	}
	r.leave(cs[1]) // the middle
	r.leave(cs[1]) // again: nothing
	r.leave(cs[3]) // the first listed
	r.leave(cs[0]) // the last listed
	if m := members(); len(m) != 1 || !m[cs[2]] {
		t.Fatalf("members after leaving: %v, want only the third", m)
	}
	// At the cap of 1 the only member is the victim; the newcomer takes
	// its place.
	cs[1].set(stateNew, now)
	v, ok := r.admit(cs[1], 1, now, time.Second)
	if !ok || v == nil || closes[2] != 1 {
		t.Fatalf("admit at the cap: victim %v ok %v, closes %v", v, ok, closes)
	}
	if m := members(); len(m) != 1 || !m[cs[1]] {
		t.Fatalf("members after the eviction: %v, want only the newcomer", m)
	}
	r.leave(cs[2]) // evicted already: nothing
	if m := members(); len(m) != 1 {
		t.Fatalf("members after the evicted one left: %d, want 1", len(m))
	}
	// Young (just admitted, stateNew now): no victim, refused.
	if _, ok := r.admit(cs[0], 1, now, time.Second); ok {
		t.Fatal("admitted at the cap with no connection old enough to close")
	}
	if m := members(); len(m) != 1 || m[cs[0]] {
		t.Fatalf("a refused connection was listed: %v", m)
	}
}
