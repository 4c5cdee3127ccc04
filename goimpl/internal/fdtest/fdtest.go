// SPDX-License-Identifier: Apache-2.0

// Package fdtest runs a test process out of descriptors, for the tests of
// what a server does when accept4, or the duplicate of a descriptor it
// has just accepted, fails for want of one (EMFILE).
package fdtest

import (
	"sync"
	"syscall"
	"testing"
)

// Exhaust lowers the process's limit on descriptors to 64 above the
// number above (a descriptor the test has just made, so that every
// number below it is taken) and takes every number left under the limit
// but free of them (descriptors of /dev/null). release gives them back
// and restores the limit; it runs at the end of the test too, and once
// only.
func Exhaust(t testing.TB, above, free int) (release func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := syscall.Rlimit{Cur: uint64(above) + 64, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fill []int
	release = sync.OnceFunc(func() {
		for _, fd := range fill {
			syscall.Close(fd)
		}
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	})
	t.Cleanup(release)
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	if len(fill) < free {
		release()
		t.Fatalf("fdtest: %d descriptors taken, fewer than the %d to leave free", len(fill), free)
	}
	for ; free > 0; free-- {
		syscall.Close(fill[len(fill)-1])
		fill = fill[:len(fill)-1]
	}
	return release
}
