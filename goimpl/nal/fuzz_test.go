// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeLookup resolves only "localhost", without touching the network.
func fakeLookup(_ context.Context, network, host string) ([]netip.Addr, error) {
	if host == "localhost" {
		if network == "ip6" {
			return []netip.Addr{netip.IPv6Loopback()}, nil
		}
		return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
	}
	return nil, errors.New("no such host")
}

// FuzzParseAddress checks Address.Create: it never panics, failures leave
// the address un-created, and successes obey the grammar's invariants.
func FuzzParseAddress(f *testing.F) {
	saved := lookupNetIP
	lookupNetIP = fakeLookup
	defer func() { lookupNetIP = saved }()
	for _, s := range []string{"IP:9001", "IP:localhost:80", "IPv6:[::1]:1", "UNIX:/x", "FD:0:1", "FD:-1:2", "I"} {
		f.Add(s, uint32(4096))
	}
	f.Fuzz(func(t *testing.T, s string, size uint32) {
		a := NewAddress()
		ok := a.Create(s, size)
		if size <= BufferMaxSize && a.DefBufferSize() != size {
			t.Fatalf("def size %d not stored", size)
		}
		if !ok {
			if a.Created() || a.CanConnect() || a.CanListen() || a.String() != "" {
				t.Fatal("failed create left state behind")
			}
			return
		}
		if size > BufferMaxSize || len(s) < 2 || len(s) > AddressMaxStrLen {
			t.Fatalf("accepted size %d / length %d", size, len(s))
		}
		if !a.CanListen() || a.String() != s {
			t.Fatal("created address cannot listen or lost its string")
		}
		var wantConnect bool
		switch {
		case strings.HasPrefix(s, "IP:"), strings.HasPrefix(s, "IPv4:"):
			rest := s[strings.IndexByte(s, ':')+1:]
			wantConnect = strings.IndexByte(rest, ':') > 0
			if a.kind != kindIPv4 {
				t.Fatal("IP: address of another kind")
			}
		case strings.HasPrefix(s, "IPv6:"):
			wantConnect = strings.HasPrefix(s, "IPv6:[")
			if a.kind != kindIPv6 {
				t.Fatal("IPv6: address of another kind")
			}
		case strings.HasPrefix(s, "UNIX:"):
			wantConnect = true
			if a.kind != kindUnix || len(s)-5 >= UnixPathMax {
				t.Fatal("bad UNIX: address accepted")
			}
		case strings.HasPrefix(s, "FD:"):
			wantConnect = true
			if a.kind != kindFD || (a.fdRead < 0 && a.fdWrite < 0) || a.fdRead < -1 || a.fdWrite < -1 || a.fdRead > 65535 || a.fdWrite > 65535 {
				t.Fatalf("bad FD: address accepted: %d %d", a.fdRead, a.fdWrite)
			}
		default:
			t.Fatalf("accepted unknown prefix %q", s)
		}
		if a.CanConnect() != wantConnect {
			t.Fatalf("can_connect = %v, want %v", a.CanConnect(), wantConnect)
		}
		// the client rule: connectable, not descriptors, not an empty path
		tg, err := ParseTarget(t.Context(), s)
		wantTarget := wantConnect && a.kind != kindFD && !(a.kind == kindUnix && a.path == "")
		if (err == nil) != wantTarget {
			t.Fatalf("ParseTarget = %+v, %v; want accepted=%v", tg, err, wantTarget)
		}
		if err != nil && !errors.Is(err, ErrAddress) {
			t.Fatalf("ParseTarget error %v does not match ErrAddress", err)
		}
		// reset keeps the size and allows a second create
		a.Reset()
		if a.Created() || !a.Create(s, size) {
			t.Fatal("reset/create again")
		}
	})
}
