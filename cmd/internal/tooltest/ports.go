// SPDX-License-Identifier: Apache-2.0

package tooltest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// The ports FreePort and FreeUDPPort hand out. A port picked from the
// kernel's ephemeral range (32768-60999) and released for a child to bind
// can be taken meanwhile by any outgoing connection or port-0 listener on
// the machine (other test packages run at the same time); these are above
// that range. A lock file per port, held until the test ends, keeps test
// processes running at the same time off each other's ports.
const (
	portLo = 61400
	portHi = 61500 // exclusive
)

// portLockDir holds the lock files (one per port, flock'ed while in use).
var portLockDir = filepath.Join(os.TempDir(), "distcache-test-ports")

// FreePort returns a TCP port on 127.0.0.1 that is free and reserved for
// the test until it ends (see portLo).
func FreePort(t testing.TB) int {
	t.Helper()
	return reservePort(t, func(p string) bool {
		l, err := net.Listen("tcp4", "127.0.0.1:"+p)
		if err == nil {
			l.Close()
		}
		return err == nil
	})
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that is free and reserved
// for the test until it ends.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	return reservePort(t, func(p string) bool {
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+p)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// reservePort locks the first port of the range, from a random start,
// whose lock no other test holds and that free says is free; the lock is
// released when the test ends, after the cleanups registered later (the
// processes bound to it are gone by then). With every port taken it
// fails the test rather than hand out one that may be in use.
func reservePort(t testing.TB, free func(port string) bool) int {
	t.Helper()
	if err := os.MkdirAll(portLockDir, 0o777); err != nil {
		t.Fatalf("port locks: %v", err)
	}
	_ = os.Chmod(portLockDir, 0o777|os.ModeSticky) // shared by every user's tests
	n := portHi - portLo
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		p := portLo + (start+i)%n
		f, err := lockPort(p)
		if err != nil {
			continue
		}
		if !free(strconv.Itoa(p)) {
			f.Close()
			continue
		}
		t.Cleanup(func() { f.Close() })
		return p
	}
	t.Fatalf("no free port in %d-%d", portLo, portHi-1)
	return 0
}

// lockPort takes port p's lock without waiting; closing the file releases
// it.
func lockPort(p int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(p)), os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("port %d: %w", p, err)
	}
	return f, nil
}
