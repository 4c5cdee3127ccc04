// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

// corpusLine is one line of testdata/addresses.txt.
type corpusLine struct {
	line   int
	nal    string // "-", "l" or "cl"
	client bool
	addr   string
}

func readCorpus(t *testing.T) []corpusLine {
	t.Helper()
	f, err := os.Open("testdata/addresses.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		nal, rest, ok1 := strings.Cut(l, " ")
		cl, addr, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || (nal != "-" && nal != "l" && nal != "cl") || (cl != "y" && cl != "n") {
			t.Fatalf("addresses.txt:%d: malformed line %q", n, l)
		}
		out = append(out, corpusLine{n, nal, cl == "y", addr})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("corpus has only %d addresses", len(out))
	}
	return out
}

// TestAddressCorpus runs the shared corpus (also run by ctests/t_addr.c
// through the C library) through Address.Create and ParseTarget, with the
// system's resolver.
func TestAddressCorpus(t *testing.T) {
	for _, c := range readCorpus(t) {
		a := NewAddress()
		got := "-"
		if a.Create(c.addr, 4096) {
			switch {
			case a.CanConnect() && a.CanListen():
				got = "cl"
			case a.CanListen():
				got = "l"
			default:
				got = "?"
			}
		}
		a.Free()
		if got != c.nal {
			t.Errorf("addresses.txt:%d: Address.Create(%q): %s, want %s", c.line, c.addr, got, c.nal)
		}
		_, err := ParseTarget(t.Context(), c.addr)
		if (err == nil) != c.client {
			t.Errorf("addresses.txt:%d: ParseTarget(%q) = %v, want accepted=%v", c.line, c.addr, err, c.client)
		}
		sp, perr := Parse(c.addr)
		if (perr == nil) != (c.nal != "-") && c.nal != "-" {
			t.Errorf("addresses.txt:%d: Parse(%q) = %v", c.line, c.addr, perr)
		}
		if perr == nil && sp.CanConnect() != (c.nal == "cl") && c.nal != "-" {
			t.Errorf("addresses.txt:%d: Spec.CanConnect(%q) = %v", c.line, c.addr, sp.CanConnect())
		}
	}
}

func TestParseTargetResolved(t *testing.T) {
	for _, tt := range []struct{ in, network, addr string }{
		{"IP:127.0.0.1:9001", "tcp4", "127.0.0.1:9001"},
		{"IPv4:localhost:5555", "tcp4", "127.0.0.1:5555"},
		{"IP:127.1:45555", "tcp4", "127.0.0.1:45555"},
		{"IP:0x7f000001:45555", "tcp4", "127.0.0.1:45555"},
		{"IP:127.0.0.1: +80", "tcp4", "127.0.0.1:80"},
		{"IPv6:[::1]:80", "tcp6", "[::1]:80"},
		{"IPv6:[fe80::1%1]:80", "tcp6", "[fe80::1%1]:80"},
		{"UNIX:rel/path", "unix", "rel/path"},
	} {
		got, err := ParseTarget(t.Context(), tt.in)
		if err != nil || got.Network() != tt.network || got.Addr != tt.addr {
			t.Errorf("ParseTarget(%q) = %s %q, %v; want %s %q", tt.in, got.Network(), got.Addr, err, tt.network, tt.addr)
			continue
		}
		// the canonical form parses to the same target, without a name
		again, err := ParseTarget(t.Context(), got.Canonical())
		if sp, _ := Parse(got.Canonical()); err != nil || again.Addr != got.Addr || (sp.Host != "" && !isLiteral(sp)) {
			t.Errorf("Canonical(%q) = %q: %+v, %v", tt.in, got.Canonical(), again, err)
		}
	}
	_, err := ParseTarget(t.Context(), "IP:9001")
	var ae *AddressError
	if !errors.Is(err, ErrAddress) || !errors.As(err, &ae) || !strings.Contains(err.Error(), "listen-only") {
		t.Errorf("listen-only target: %v", err)
	}
}

func isLiteral(sp Spec) bool { _, ok := sp.Literal(); return ok }
