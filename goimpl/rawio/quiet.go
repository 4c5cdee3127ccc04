// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// Quiet sockets. The runtime's poller watches every socket for reading
// and for writing, edge-triggered. On a unix socket every read by the
// peer frees room in ours, which is a writing edge: each answer the peer
// reads wakes the thread parked in the poller, for nothing, when no write
// waits for room, which a request-answer protocol's writes almost never
// do. Quiet tells the poller to watch a socket for reading only
// (EPOLL_CTL_MOD on the runtime's epoll set, with the registration's own
// data, read from /proc/self/fdinfo; the runtime's epoll descriptor is
// found once, by the entry for the socket's inode); Loud puts the
// registration back before a write waits. Where anything of this is not
// as expected, Quiet changes nothing and says so.

// epollET is EPOLLET as the unsigned events field holds it.
const epollET = 1 << 31

// Registration is a socket's entry in the runtime poller's epoll set, as
// it was before Quiet; its zero value restores nothing.
type Registration struct {
	epfd, fd int
	events   uint32
	data     uint64
}

// poller caches the runtime's epoll descriptor, found once.
var poller struct {
	mu   sync.Mutex
	fd   int // 0: not looked for yet; -1: not found
	info []byte
}

// Quiet makes the runtime's poller watch nc (a *net.TCPConn or
// *net.UnixConn) for reading only; it returns the registration as it was,
// for Loud, and false when it changed nothing. Writes to a quiet socket
// must call Loud before they wait for room (Conn.WriteWait).
func Quiet(nc net.Conn) (Registration, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return Registration{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Registration{}, false
	}
	var r Registration
	rc.Control(func(fd uintptr) { r, ok = quiet(int(fd)) })
	return r, ok
}

func quiet(fd int) (Registration, bool) {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return Registration{}, false
	}
	poller.mu.Lock()
	defer poller.mu.Unlock()
	r, ok := Registration{}, false
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
		return Registration{}, false
	}
	if r.set(r.events&^syscall.EPOLLOUT) != nil {
		return Registration{}, false
	}
	return r, true
}

// Loud puts the registration back as it was before Quiet; the socket must
// still be open.
func (r Registration) Loud() {
	if r.epfd > 0 {
		r.set(r.events)
	}
}

// Mute has the runtime's poller watch the socket for nothing, for a
// socket an event loop of the process watches and reads without waiting
// (Conn.NoWait): its readable edges would otherwise also wake a thread
// waiting in the poller, for nothing. Quiet puts reading back, Loud
// everything; a write must call Loud before it waits for room, as for
// Quiet.
func (r Registration) Mute() {
	if r.epfd > 0 {
		r.set(r.events &^ (syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP))
	}
}

// Quiet makes a registration Mute or Loud made quiet again.
func (r Registration) Quiet() {
	if r.epfd > 0 {
		r.set(r.events &^ syscall.EPOLLOUT)
	}
}

// QuietCount is how many sockets the runtime's poller watches for reading
// only (0 before the first Quiet): for tests and diagnostics.
func QuietCount() int {
	poller.mu.Lock()
	defer poller.mu.Unlock()
	n := 0
	if poller.fd <= 0 || readInfo(poller.fd) != nil {
		return 0
	}
	for b := poller.info; len(b) > 0; {
		var line []byte
		line, b = nextLine(b)
		if _, ev, _, _, ok := parseEntry(line); ok && ev&epollET != 0 && ev&syscall.EPOLLIN != 0 && ev&syscall.EPOLLOUT == 0 {
			n++
		}
	}
	return n
}

func (r Registration) set(events uint32) error {
	ev := syscall.EpollEvent{Events: events}
	// The data field follows events (packed on amd64, aligned elsewhere);
	// package syscall names its two halves Fd and Pad.
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = r.data
	if _, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(r.epfd), syscall.EPOLL_CTL_MOD, uintptr(r.fd), uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// readInfo reads /proc/self/fdinfo/<epfd> into poller.info (poller.mu
// held).
func readInfo(epfd int) error {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return err
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
	return nil
}

func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseEntry parses a line "tfd: <fd> events: <hex> data: <hex> pos:0
// ino:<hex> ..." of an epoll descriptor's fdinfo.
func parseEntry(line []byte) (fd int, events uint32, data, ino uint64, ok bool) {
	f := bytes.Fields(line)
	if len(f) < 7 || string(f[0]) != "tfd:" || string(f[2]) != "events:" || string(f[4]) != "data:" {
		return 0, 0, 0, 0, false
	}
	n, err1 := strconv.Atoi(string(f[1]))
	ev, err2 := strconv.ParseUint(string(f[3]), 16, 32)
	d, err3 := strconv.ParseUint(string(f[5]), 16, 64)
	var err4 error = syscall.EINVAL
	for _, x := range f[6:] {
		if v, found := bytes.CutPrefix(x, []byte("ino:")); found {
			ino, err4 = strconv.ParseUint(string(v), 16, 64)
		}
	}
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return 0, 0, 0, 0, false
	}
	return n, uint32(ev), d, ino, true
}

// findRegistration returns epoll set epfd's entry for descriptor fd of
// inode ino (poller.mu held).
func findRegistration(epfd, fd int, ino uint64) (Registration, bool) {
	if readInfo(epfd) != nil {
		return Registration{}, false
	}
	for b := poller.info; len(b) > 0; {
		var line []byte
		line, b = nextLine(b)
		if n, ev, data, inode, ok := parseEntry(line); ok && n == fd {
			if inode != ino {
				return Registration{}, false
			}
			return Registration{epfd: epfd, fd: fd, events: ev, data: data}, true
		}
	}
	return Registration{}, false
}
