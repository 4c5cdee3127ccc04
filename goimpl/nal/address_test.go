// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"unsafe"
)

func TestAddressVerifiedTable(t *testing.T) {
	// Resolve "localhost" for real; answer every other name "no such
	// host" without asking DNS, so the test does not depend on the network.
	real := lookupNetIP
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if host == "localhost" {
			return real(ctx, network, host)
		}
		return fakeLookup(ctx, network, host)
	}
	defer func() { lookupNetIP = real }()
	tests := []struct {
		s                         string
		ok, canConnect, canListen bool
	}{
		{"IP:9001", true, false, true},
		{"IP::9001", true, false, true},
		{"IPv4:9001", true, false, true},
		{"IP:0", true, false, true},
		{"IP:65535", true, false, true},
		{"IP: 80", true, false, true},
		{"IP:+80", true, false, true},
		{"IP:127.0.0.1:9001", true, true, true},
		{"IPv4:localhost:9001", true, true, true},
		{"IP:65536", false, false, false},
		{"IP:-1", false, false, false},
		{"IP:9001x", false, false, false},
		{"IP:", false, false, false},
		{"IP:127.0.0.1:", false, false, false},
		{"IP:1.2.3.4:5:6", false, false, false},
		{"IP:host.invalid:80", false, false, false},
		{"ip:9001", false, false, false},
		{"IPv6:::1:80", false, false, false},
		{"IP:[::1]:80", false, false, false},
		{"TCP:1", false, false, false},
		{"I", false, false, false},
		// beyond the verified table
		{"IP::", false, false, false},
		{"IP: ", false, false, false},
		{"IP:-0", true, false, true},
		{"IP:99999999999999999999999", false, false, false},
		{"IP:127.1:80", true, true, true},
		{"IP:0x7f.0.0.1:80", true, true, true},
		{"UNIX:/tmp/x.sock", true, true, true},
		{"UNIX:", true, true, true},
		{"UNIX:" + strings.Repeat("a", 107), true, true, true},
		{"UNIX:" + strings.Repeat("a", 108), false, false, false},
		{"FD:0", true, true, true},
		{"FD:3:4", true, true, true},
		{"FD:-1:4", true, true, true},
		{"FD:3:-1", true, true, true},
		{"FD:-1:-1", false, false, false},
		{"FD:-1", false, false, false},
		{"FD:-5:3", false, false, false},
		{"FD:65535", true, true, true},
		{"FD:65536", false, false, false},
		{"FD:", false, false, false},
		{"FD:3:", false, false, false},
		{"FD:3x", false, false, false},
		{"FD:3:4:5", false, false, false},
		{"IPv6:9001", true, false, true},
		{"IPv6::9001", true, false, true},
		{"IPv6:[::1]:9001", true, true, true},
		{"IPv6:[fe80::1%1]:9001", true, true, true},
		{"IPv6:[::1]:", false, false, false},
		{"IPv6:[::1]9001", false, false, false},
		{"IPv6:[]:9001", false, false, false},
		{"IPv6:[127.0.0.1]:9001", false, false, false},
		{"IPv6:[::ffff:127.0.0.1]:9001", false, false, false},
		{"IPv6:::1", false, false, false},
		{"IPv6:70000", false, false, false},
	}
	for _, tt := range tests {
		a := NewAddress()
		got := a.Create(tt.s, 4096)
		if got != tt.ok || a.CanConnect() != tt.canConnect || a.CanListen() != tt.canListen {
			t.Errorf("%q: got create=%v connect=%v listen=%v; want %v %v %v",
				tt.s, got, a.CanConnect(), a.CanListen(), tt.ok, tt.canConnect, tt.canListen)
		}
		if got && a.String() != tt.s {
			t.Errorf("%q: String() = %q", tt.s, a.String())
		}
		if !got && a.Created() {
			t.Errorf("%q: failed create left the address created", tt.s)
		}
		a.Free()
	}
}

func TestAddressLifecycle(t *testing.T) {
	a := NewAddress()
	if a.DefBufferSize() != 0 || a.CanConnect() || a.CanListen() {
		t.Fatal("new address not empty")
	}
	if a.Create("IP:1", 32769) {
		t.Fatal("def size 32769 accepted")
	}
	if !a.Create("IP:127.0.0.1:1", 32768) || a.DefBufferSize() != 32768 {
		t.Fatal("create with 32768 failed")
	}
	if a.Create("IP:2", 10) {
		t.Fatal("create on a created address succeeded")
	}
	a.Reset()
	if a.CanConnect() || a.DefBufferSize() != 32768 {
		t.Fatalf("reset: connect=%v def=%d", a.CanConnect(), a.DefBufferSize())
	}
	// def size is stored even when parsing fails
	if a.Create("bogus", 100) || a.DefBufferSize() != 100 {
		t.Fatalf("failed create: def=%d, want 100", a.DefBufferSize())
	}
	if a.SetDefBufferSize(32769) || a.DefBufferSize() != 100 {
		t.Fatal("set_def_buffer_size 32769 accepted")
	}
	if !a.SetDefBufferSize(0) || a.DefBufferSize() != 0 {
		t.Fatal("set_def_buffer_size 0 refused")
	}
	a.Free()
	a.Free()
	if a.Create("IP:1", 1) || a.SetDefBufferSize(1) {
		t.Fatal("freed address usable")
	}
	var nilA *Address
	nilA.Free()
	nilA.Reset()
	if nilA.Create("IP:1", 1) || nilA.CanConnect() || nilA.DefBufferSize() != 0 {
		t.Fatal("nil address usable")
	}
}

func TestAddressLengthLimits(t *testing.T) {
	a := NewAddress()
	s255 := "FD:" + strings.Repeat("0", 251) + "7"
	if len(s255) != 255 || !a.Create(s255, 0) {
		t.Fatalf("255-char address refused")
	}
	a.Reset()
	if a.Create(s255+"0", 0) {
		t.Fatal("256-char address accepted")
	}
}

// An address string made again (recent) gives the same address as the
// first time, whatever the caller does with its bytes afterwards
// (CreateView), and a host name is looked up on every Create, never
// remembered.
func TestAddressCreateAgain(t *testing.T) {
	for _, s := range []string{"IP:9001", "IP:127.0.0.1:9001", "IP:0x7f.1:80", "IPv6:[::1]:80",
		"UNIX:/tmp/x.sock", "FD:3:4", "IPv6:9002"} {
		buf := []byte(s)
		var first AddressState
		for i := 0; i < 3; i++ {
			copy(buf, s)
			a := NewAddress()
			if !a.CreateView(unsafe.String(&buf[0], len(buf)), 100) {
				t.Fatalf("%s: create %d failed", s, i)
			}
			for j := range buf {
				buf[j] = '#'
			}
			if !a.Fixed() {
				t.Fatalf("%s: create %d: not Fixed (it needs no lookup)", s, i)
			}
			st := a.Export()
			if st.Str != s {
				t.Fatalf("%s: the address keeps %q after its caller reused the bytes", s, st.Str)
			}
			if i == 0 {
				first = st
			} else if st != first {
				t.Fatalf("%s: create %d gave %+v, the first %+v", s, i, st, first)
			}
			a.Reset()
			if a.Fixed() {
				t.Fatalf("%s: Fixed after reset", s)
			}
			if a.Created() || a.DefBufferSize() != 100 {
				t.Fatalf("%s: reset left created=%v size=%d", s, a.Created(), a.DefBufferSize())
			}
		}
	}
	real := lookupNetIP
	defer func() { lookupNetIP = real }()
	lookups := 0
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		lookups++
		return []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(lookups)})}, nil
	}
	for i := 1; i <= 3; i++ {
		a := NewAddress()
		if !a.Create("IP:some.host:80", 0) {
			t.Fatal("create of a host name failed")
		}
		if a.Fixed() {
			t.Fatal("an address made by a lookup is Fixed")
		}
		if lookups != i || a.Export().IP != fmt.Sprintf("10.0.0.%d", i) {
			t.Fatalf("create %d: %d lookups, address %s (a name is resolved by every create)", i, lookups, a.Export().IP)
		}
	}
}

func TestInetAtonForms(t *testing.T) {
	for s, want := range map[string]string{
		"127.0.0.1": "127.0.0.1", "127.1": "127.0.0.1", "0x7f000001": "127.0.0.1",
		"10.1.2": "10.1.0.2", "017.0.0.1": "15.0.0.1", "1.2.3.4.": "", "1.2.3.4.5": "",
		"1..2": "", "": "", "256.1": "", "1.16777216": "", "1.2.3.256": "", "0x": "",
	} {
		ip, ok := inetAton(s)
		if got := map[bool]string{true: ip.String(), false: ""}[ok]; got != want {
			t.Errorf("inetAton(%q) = %q, want %q", s, got, want)
		}
	}
}

// Go's resolver is bounded by ResolveTimeout; a lookup handed over with
// SetLookup (the engine's getaddrinfo, which has its own bounds) gets the
// caller's context as it is: no timer per lookup.
func TestSetLookupContext(t *testing.T) {
	savedF, savedB := lookupNetIP, lookupBounded
	defer func() { lookupNetIP, lookupBounded = savedF, savedB }()
	var deadline []bool
	f := func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		_, ok := ctx.Deadline()
		deadline = append(deadline, ok)
		return []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, 1})}, nil
	}
	sp, err := Parse("IP:some.host:80")
	if err != nil {
		t.Fatal(err)
	}
	SetLookup(f)
	if ip, err := sp.ResolveIP(context.Background()); err != nil || ip.String() != "10.0.0.1" {
		t.Fatalf("through SetLookup's lookup: %v %v", ip, err)
	}
	SetLookup(nil)
	if !lookupBounded {
		t.Fatal("SetLookup(nil): Go's resolver is not bounded by ResolveTimeout")
	}
	lookupNetIP = f // Go's resolver's place, without asking DNS
	if _, err := sp.ResolveIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(deadline) != 2 || deadline[0] || !deadline[1] {
		t.Fatalf("deadlines seen (SetLookup's lookup, then Go's resolver's place): %v, want [false true]", deadline)
	}
}
