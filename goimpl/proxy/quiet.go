// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// Quiet connections. The runtime's poller watches every socket for
// reading and for writing, edge-triggered; on a unix socket every read
// by the peer frees room in ours, which is an edge: each answer an
// application reads wakes the thread parked in the poller, for nothing
// (the next request is not there yet). A resumed TLS handshake through
// dc_client so cost a third more thread wake-ups than it needs. So once a
// local connection has shown that it is kept (quietAfter requests), the
// poller is told to watch it for reading only (EPOLL_CTL_MOD on the
// runtime's epoll set, with the registration's own data, read from
// /proc/self/fdinfo); a write that has to wait for room puts the
// registration back as it was first. Where anything of this is not as
// expected, the connection stays as it is.

// quietAfter is how many requests a local connection serves before it is
// made quiet: a connection per operation never pays for the change.
const quietAfter = 3

// epollET is EPOLLET as the unsigned events field holds it.
const epollET = 1 << 31

// registration is a descriptor's entry in the runtime's epoll set.
type registration struct {
	epfd   int
	events uint32
	data   uint64
}

// poller caches the runtime's epoll descriptor, found once.
var poller struct {
	mu   sync.Mutex
	fd   int // 0: not looked for yet; -1: not found
	info []byte
}

// quieten drops the writing edge from fd's registration; it returns the
// registration as it was, for loud.
func quieten(fd int) (registration, bool) {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return registration{}, false
	}
	poller.mu.Lock()
	defer poller.mu.Unlock()
	r, ok := registration{}, false
	switch {
	case poller.fd > 0:
		r, ok = findRegistration(poller.fd, fd, st.Ino)
	case poller.fd == 0:
		poller.fd = -1
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return r, false
		}
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil || n == fd {
				continue
			}
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != "anon_inode:[eventpoll]" {
				continue
			}
			if r, ok = findRegistration(n, fd, st.Ino); ok {
				poller.fd = n
				break
			}
		}
	}
	if !ok || r.events&syscall.EPOLLOUT == 0 || r.events&syscall.EPOLLIN == 0 || r.events&epollET == 0 {
		return r, false
	}
	return r, r.set(fd, r.events&^syscall.EPOLLOUT) == nil
}

// loud puts fd's registration back as it was.
func (r registration) loud(fd int) { r.set(fd, r.events) }

func (r registration) set(fd int, events uint32) error {
	ev := syscall.EpollEvent{Events: events}
	// The data field follows events (packed on amd64, aligned elsewhere);
	// package syscall names its two halves Fd and Pad.
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = r.data
	if _, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(r.epfd), syscall.EPOLL_CTL_MOD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// findRegistration reads epoll set epfd's entry for descriptor fd of
// inode ino: a line "tfd: <fd> events: <hex> data: <hex> pos:0 ino:<hex> ..."
// of /proc/self/fdinfo/<epfd>. poller.mu is held.
func findRegistration(epfd, fd int, ino uint64) (registration, bool) {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return registration{}, false
	}
	defer f.Close()
	b := poller.info[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil || n == 0 {
			break
		}
	}
	poller.info = b
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := bytes.Fields(line)
		// tfd: N events: E data: D pos:0 ino:I sdev:S
		if len(f) < 8 || string(f[0]) != "tfd:" || string(f[1]) != strconv.Itoa(fd) || string(f[2]) != "events:" || string(f[4]) != "data:" {
			continue
		}
		ev, err1 := strconv.ParseUint(string(f[3]), 16, 32)
		data, err2 := strconv.ParseUint(string(f[5]), 16, 64)
		var inode uint64
		var err3 error = syscall.EINVAL
		for _, x := range f[6:] {
			if v, ok := bytes.CutPrefix(x, []byte("ino:")); ok {
				inode, err3 = strconv.ParseUint(string(v), 16, 64)
			}
		}
		if err1 != nil || err2 != nil || err3 != nil || inode != ino {
			return registration{}, false
		}
		return registration{epfd: epfd, events: uint32(ev), data: data}, true
	}
	return registration{}, false
}
