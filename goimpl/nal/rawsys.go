// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw system calls of a selector in raw mode (Selector.SetRaw): made
// without telling the Go scheduler (syscall.RawSyscall6, no
// entersyscall/exitsyscall), so the calling goroutine keeps its P in the
// running state while it waits. The runtime's monitor then has no P in a
// system call to take back and hand to another thread; a garbage
// collection or a preemption request interrupts the wait with a signal
// (EINTR), which every caller treats as an early return.

func rawPpoll(fds []unix.PollFd, ts *unix.Timespec) (int, error) {
	var p unsafe.Pointer
	if len(fds) > 0 {
		p = unsafe.Pointer(&fds[0])
	}
	n, _, e := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(p), uintptr(len(fds)), uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawRead(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall6(unix.SYS_READ, uintptr(fd), uintptr(p), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawSend is send(2) with MSG_NOSIGNAL (sendto without an address).
func rawSend(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
