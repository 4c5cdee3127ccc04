// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// A Handler is told that its descriptor is readable, has hung up or failed.
type Handler interface {
	Ready()
}

// ErrWake is what Wait returns when Wake interrupted it.
var ErrWake = errors.New("evloop: woken")

// Loop is an epoll set served by one goroutine (Wait); Watch, Unwatch and
// Wait belong to that goroutine, Wake may be called from any.
type Loop struct {
	ep  *os.File        // the epoll descriptor, parked on in the netpoller
	rc  syscall.RawConn // of ep
	epd int             // ep's descriptor, open as long as ep is
	efd int             // eventfd: Wake

	h      []Handler // by descriptor
	ev     [64]syscall.EpollEvent
	n      int    // events returned by the last epoll_pwait
	cur    uint32 // the events of the Handler being called
	waitFn func(uintptr) bool
	dl     time.Time // deadline set on ep

	mu     sync.Mutex // Wake against Close
	closed bool
}

// New returns an empty Loop.
func New() (*Loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile puts it in the netpoller (an epoll
	// descriptor is readable while it has events to report).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", e)
	}
	l := &Loop{ep: os.NewFile(uintptr(epfd), "epoll"), epd: epfd, efd: int(efd)}
	if l.rc, err = l.ep.SyscallConn(); err == nil {
		err = ctl(epfd, syscall.EPOLL_CTL_ADD, l.efd)
	}
	if err != nil {
		l.ep.Close()
		syscall.Close(l.efd)
		return nil, err
	}
	l.waitFn = l.poll
	return l, nil
}

// ctl adds (EPOLL_CTL_ADD) or removes fd, for reading, edge-triggered.
func ctl(epfd, op, fd int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | -syscall.EPOLLET, Fd: int32(fd)}
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return os.NewSyscallError("epoll_ctl", e)
	}
	return nil
}

// Watch adds fd: h.Ready is called from Wait when fd becomes readable
// (edge-triggered; see the package documentation). A listening socket's
// new connection wakes every Loop watching it, and Accept gives it to one
// (syscall.EAGAIN to the others): to wake one Loop per connection, have
// one Loop watch the listener.
func (l *Loop) Watch(fd int, h Handler) error {
	if err := ctl(l.epd, syscall.EPOLL_CTL_ADD, fd); err != nil {
		return err
	}
	for fd >= len(l.h) {
		l.h = append(l.h, nil)
	}
	l.h[fd] = h
	return nil
}

// Lend registers h as fd's Handler without watching fd: Arm and Disarm,
// from any goroutine, then start and stop the watching. Loops that pass
// one descriptor between them (a listener that goes to whichever loop is
// free) so pass it with one epoll_ctl each and no goroutine woken: the
// Loop that gets it is woken only when there is something to take. Lend
// belongs to the Loop's goroutine, or comes before it starts.
func (l *Loop) Lend(fd int, h Handler) {
	for fd >= len(l.h) {
		l.h = append(l.h, nil)
	}
	l.h[fd] = h
}

// Arm watches a descriptor given to Lend; a Loop's own Wait reports what
// is already there (epoll does, for a descriptor added ready).
func (l *Loop) Arm(fd int) error { return ctl(l.epd, syscall.EPOLL_CTL_ADD, fd) }

// Disarm stops watching a descriptor given to Lend, keeping its Handler.
func (l *Loop) Disarm(fd int) error { return ctl(l.epd, syscall.EPOLL_CTL_DEL, fd) }

// Unwatch removes fd. Closing fd removes it too (when it was its only
// descriptor), so a handler closing its connection need not call Unwatch;
// one passing the socket on (dup) must.
func (l *Loop) Unwatch(fd int) error {
	if fd < len(l.h) {
		l.h[fd] = nil
	}
	return ctl(l.epd, syscall.EPOLL_CTL_DEL, fd)
}

// HungUp reports, to the Handler being called, whether its peer has shut
// down its side or the descriptor has failed (along with what is left to
// read): a Handler that learns from a short read that it has read all
// there is must still read once more to see the end.
func (l *Loop) HungUp() bool {
	return l.cur&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
}

// Forget drops fd's handler without a system call: for a descriptor about
// to be closed.
func (l *Loop) Forget(fd int) {
	if fd < len(l.h) {
		l.h[fd] = nil
	}
}

// poll collects the ready events without waiting; false when there are
// none (the netpoller then parks the goroutine until there are).
func (l *Loop) poll(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&l.ev[0])), uintptr(len(l.ev)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return true // with no events: Wait returns, the caller retries
		}
		l.n = int(r)
		return r > 0
	}
}

// Wait waits until a watched descriptor is ready, Wake is called or the
// deadline passes (zero: none), and calls the Handlers of the ready
// descriptors. It returns nil after calling Handlers, ErrWake when woken,
// os.ErrDeadlineExceeded at the deadline.
func (l *Loop) Wait(deadline time.Time) error {
	if !deadline.Equal(l.dl) {
		l.dl = deadline
		l.ep.SetReadDeadline(deadline)
	}
	l.n = 0
	if err := l.rc.Read(l.waitFn); err != nil {
		return err
	}
	return l.dispatch()
}

// Poll is Wait without the waiting: it calls the Handlers of the
// descriptors ready now.
func (l *Loop) Poll() error {
	l.n = 0
	l.poll(uintptr(l.epd))
	return l.dispatch()
}

func (l *Loop) dispatch() error {
	woken := false
	for i := 0; i < l.n; i++ {
		fd := int(l.ev[i].Fd)
		if fd == l.efd {
			var b [8]byte
			syscall.RawSyscall(syscall.SYS_READ, uintptr(l.efd), uintptr(unsafe.Pointer(&b[0])), 8)
			woken = true
			continue
		}
		if fd < len(l.h) && l.h[fd] != nil {
			l.cur = l.ev[i].Events
			l.h[fd].Ready()
			l.cur = 0
		}
	}
	l.n = 0
	if woken {
		return ErrWake
	}
	return nil
}

// Wake makes the current or next Wait return ErrWake (after the Handlers
// of the descriptors ready by then). It may be called from any goroutine,
// also after Close.
func (l *Loop) Wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	one := uint64(1)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efd), uintptr(unsafe.Pointer(&one)), 8)
}

// Close releases the loop; the descriptors it watched are the caller's.
func (l *Loop) Close() error {
	l.mu.Lock()
	l.closed = true
	syscall.Close(l.efd)
	l.mu.Unlock()
	return l.ep.Close()
}

// Accept accepts a connection on the listening descriptor lfd,
// non-blocking and close-on-exec; syscall.EAGAIN when there is none.
func Accept(lfd int) (int, error) {
	for {
		fd, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(lfd), 0, 0, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		}
		return -1, e
	}
}

// Close closes a descriptor the loop's owner accepted.
func Close(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

// ListenerFD returns a duplicate of ln's descriptor (close-on-exec) for
// Watch and Accept; the caller closes it. Closing ln does not stop the
// duplicate from accepting. The socket must stay non-blocking, as the net
// package keeps it (a blocking accept4 in a raw system call would hold
// its P until a connection comes): ListenerFD makes it non-blocking again
// if it is not (Nonblock). Mind that the Fd of a File from the net
// package's File methods (os.StartProcess calls it for ExtraFiles) makes
// it blocking, for every descriptor of it: an os.NewFile of a ListenerFD
// does not.
func ListenerFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, errors.New("evloop: the listener has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		r, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, err
	}
	if derr == nil {
		if _, derr = Nonblock(fd); derr != nil {
			Close(fd)
			fd = -1
		}
	}
	return fd, derr
}

// Nonblock makes the open file of fd non-blocking (for every descriptor
// of it) if it is not, and reports whether it was not.
func Nonblock(fd int) (changed bool, err error) {
	fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		return false, os.NewSyscallError("fcntl", e)
	}
	if fl&syscall.O_NONBLOCK != 0 {
		return false, nil
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, fl|syscall.O_NONBLOCK); e != 0 {
		return false, os.NewSyscallError("fcntl", e)
	}
	return true, nil
}

// PeerAddr is the address of fd's peer (a *net.TCPAddr, or a *net.UnixAddr
// with an empty name for an unnamed unix client); nil if unknown.
func PeerAddr(fd int) net.Addr {
	sa, err := syscall.Getpeername(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// WatchClosed returns once stopped is closed (the loops have stopped
// accepting on their duplicate of ln, ListenerFD), looking at ln once a
// second meanwhile: when anyone has closed ln, which leaves the duplicate
// open and tells no one, it calls closed (which has the loops stop) and
// goes on waiting; when something has made the socket blocking, it makes
// it non-blocking again and calls madeBlocking (a raw accept4 would wait
// holding its P).
func WatchClosed(ln net.Listener, stopped <-chan struct{}, closed, madeBlocking func()) {
	sc, ok := ln.(syscall.Conn)
	var rc syscall.RawConn
	var err error
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		<-stopped
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-tick.C:
			var changed bool
			if rc.Control(func(fd uintptr) { changed, _ = Nonblock(int(fd)) }) != nil {
				closed()
				<-stopped
				return
			}
			if changed {
				madeBlocking()
			}
		}
	}
}
