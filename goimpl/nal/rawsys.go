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

func rawRead(fd int, b []byte) (int, error) { return rawBuf(unix.SYS_READ, fd, b, 0) }

// rawSend is send(2) with MSG_NOSIGNAL (sendto without an address).
func rawSend(fd int, b []byte) (int, error) {
	return rawBuf(unix.SYS_SENDTO, fd, b, unix.MSG_NOSIGNAL)
}

// rawBuf makes the system call trap(fd, b, len(b), flags, 0, 0).
func rawBuf(trap uintptr, fd int, b []byte, flags uintptr) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall6(trap, uintptr(fd), uintptr(p), uintptr(len(b)), flags, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
