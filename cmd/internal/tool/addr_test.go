// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseAddr(t *testing.T) {
	long := "UNIX:/" + strings.Repeat("x", 107)
	for _, tc := range []struct {
		in, network, address string
		wildcard             bool
		bad                  bool
	}{
		{in: "IP:9001", network: "tcp4", address: "0.0.0.0:9001", wildcard: true},
		{in: "IP::9001", network: "tcp4", address: "0.0.0.0:9001", wildcard: true},
		{in: "IPv4:9001", network: "tcp4", address: "0.0.0.0:9001", wildcard: true},
		{in: "IP:127.0.0.1:9001", network: "tcp4", address: "127.0.0.1:9001"},
		{in: "IPv4:localhost:5555", network: "tcp4", address: "localhost:5555"},
		{in: "IPv6:[::1]:80", network: "tcp6", address: "[::1]:80"},
		{in: "IPv6:80", network: "tcp6", address: "[::]:80", wildcard: true},
		{in: "UNIX:/tmp/scache", network: "unix", address: "/tmp/scache"},
		{in: "UNIX:rel/sock", network: "unix", address: "rel/sock"},
		{in: "FD:3", network: "fd"},
		{in: "IP:127.1:80", network: "tcp4", address: "127.0.0.1:80"},
		{in: "IP:0x7f000001:80", network: "tcp4", address: "127.0.0.1:80"},
		{in: "IP: +80", network: "tcp4", address: "0.0.0.0:80", wildcard: true},
		{in: "IPv6:[0::1]:80", network: "tcp6", address: "[::1]:80"},
		{in: "FD:3:3", network: "fd"},
		{in: "IPv6:[::ffff:1.2.3.4]:80", bad: true},
		{in: "IP:local host:80", bad: true},
		{in: "IP:65536", bad: true},
		{in: "IP:-1", bad: true},
		{in: "IP:9001x", bad: true},
		{in: "IP:", bad: true},
		{in: "IP:127.0.0.1:", bad: true},
		{in: "IP:1.2.3.4:5:6", bad: true},
		{in: "ip:9001", bad: true},
		{in: "TCP:1", bad: true},
		{in: "I", bad: true},
		{in: "UNIX:", bad: true},
		{in: long, bad: true},
		{in: "FD:3:4", bad: true},
		{in: "IPv6:::1:80", bad: true},
	} {
		a, err := ParseAddr(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseAddr(%q) = %+v, want an error", tc.in, a)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", tc.in, err)
			continue
		}
		if a.Network != tc.network || (tc.address != "" && a.Address != tc.address) || a.Wildcard != tc.wildcard {
			t.Errorf("ParseAddr(%q) = %+v, want %s %s wildcard=%v", tc.in, a, tc.network, tc.address, tc.wildcard)
		}
		if a.CanConnect() == tc.wildcard {
			t.Errorf("ParseAddr(%q).CanConnect() = %v", tc.in, a.CanConnect())
		}
	}
}

func TestAbs(t *testing.T) {
	wd, _ := os.Getwd()
	a, _ := ParseAddr("UNIX:x.sock")
	if got := a.Abs().Str; got != "UNIX:"+filepath.Join(wd, "x.sock") {
		t.Errorf("Abs = %q", got)
	}
	a, _ = ParseAddr("IP:1")
	if a.Abs().Str != "IP:1" {
		t.Errorf("Abs changed a TCP address")
	}
}

func TestListenUnixSocketHygiene(t *testing.T) {
	dir, err := os.MkdirTemp("", "tl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	a, _ := ParseAddr("UNIX:" + dir + "/s")
	l, err := Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(a); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	l.Close()
	// now stale: taken over
	l2, err := Listen(a)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.RemoveSocket()
	if _, err := os.Stat(dir + "/s"); !os.IsNotExist(err) {
		t.Errorf("RemoveSocket left the file")
	}
	l2.Close()
	os.WriteFile(dir+"/f", []byte("keep me"), 0o644)
	fa, _ := ParseAddr("UNIX:" + dir + "/f")
	if _, err := Listen(fa); err == nil {
		t.Errorf("listened over a regular file")
	}
	if b, _ := os.ReadFile(dir + "/f"); string(b) != "keep me" {
		t.Errorf("regular file damaged")
	}
	// RemoveSocket does not remove a socket that is no longer ours.
	l3, _ := Listen(a)
	os.Remove(dir + "/s")
	other, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l3.RemoveSocket()
	if _, err := os.Stat(dir + "/s"); err != nil {
		t.Errorf("RemoveSocket removed another process's socket")
	}
	l3.Close()
}

// TestListenTCPIsPlain: a TCP listener is a plain TCP socket, not the
// Multipath TCP one Go's listeners are by default where the kernel has it
// (distcache clients open plain TCP connections, which an MPTCP listener
// takes through its fallback at a cost per connection).
func TestListenTCPIsPlain(t *testing.T) {
	for _, s := range []string{"IP:127.0.0.1:0", "IPv6:[::1]:0"} {
		a, err := ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := Listen(a)
		if err != nil {
			if a.Network == "tcp6" {
				t.Logf("%s: %v (no IPv6 loopback here)", s, err)
				continue
			}
			t.Fatal(err)
		}
		rc, err := ln.Listener.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		proto, serr := -1, error(nil)
		rc.Control(func(fd uintptr) {
			proto, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PROTOCOL)
		})
		ln.Close()
		if serr != nil {
			t.Fatal(serr)
		}
		if proto != syscall.IPPROTO_TCP {
			t.Errorf("%s: the listening socket's protocol is %d, want IPPROTO_TCP (%d); 262 is IPPROTO_MPTCP", s, proto, syscall.IPPROTO_TCP)
		}
	}
}
