// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"context"
	"net/netip"
	"testing"

	gonal "github.com/distcache-go/distcache/goimpl/nal"
)

// The engine resolves names with the C library (getaddrinfo): localhost
// from /etc/hosts, and an address created from it connects there.
func TestCLookup(t *testing.T) {
	ips, err := cLookup(context.Background(), "ip4", "localhost")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("cLookup(ip4, localhost) = %v, %v; want [127.0.0.1]", ips, err)
	}
	if ips, err := cLookup(context.Background(), "ip4", ""); err == nil {
		t.Fatalf("cLookup of an empty name = %v, want an error", ips)
	}
	a := gonal.NewAddress()
	if !a.Create("IP:localhost:9001", 0) || a.Export().IP != "127.0.0.1" {
		t.Fatalf("IP:localhost:9001 in the engine: %+v", a.Export())
	}
}
