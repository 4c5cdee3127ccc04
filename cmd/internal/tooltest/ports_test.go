// SPDX-License-Identifier: Apache-2.0

package tooltest

import (
	"net"
	"strconv"
	"testing"
)

// A port FreePort hands out is above the ephemeral range, bindable, and
// locked until its test ends: a second FreePort (of this process or any
// other) does not get it meanwhile, and it is free again afterwards.
func TestFreePortReservesUntilTheTestEnds(t *testing.T) {
	var inner int
	t.Run("reserve", func(t *testing.T) {
		inner = FreePort(t)
		if inner < portLo || inner >= portHi {
			t.Fatalf("port %d outside %d-%d", inner, portLo, portHi-1)
		}
		if f, err := lockPort(inner); err == nil {
			f.Close()
			t.Fatalf("port %d is not locked while its test runs", inner)
		}
		seen := map[int]bool{inner: true}
		for i := 0; i < 10; i++ {
			p := FreePort(t)
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
		u := FreeUDPPort(t)
		if seen[u] {
			t.Fatalf("UDP port %d is a TCP port handed out already", u)
		}
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(inner))
		if err != nil {
			t.Fatalf("the reserved port is not free: %v", err)
		}
		l.Close()
	})
	f, err := lockPort(inner)
	if err != nil {
		t.Fatalf("port %d still locked after its test: %v", inner, err)
	}
	f.Close()
}
