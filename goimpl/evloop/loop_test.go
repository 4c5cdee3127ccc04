// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

type handlerFunc func()

func (f handlerFunc) Ready() { f() }

func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// socketpair returns both ends of a non-blocking unix stream socket pair,
// closed when the test ends.
func socketpair(t *testing.T) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds
}

// waitFor runs Wait until cond holds, failing after a few seconds.
func waitFor(t *testing.T, l *Loop, cond func() bool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("the condition never held")
		}
		if err := l.Wait(end); err != nil && !errors.Is(err, ErrWake) {
			t.Fatal(err)
		}
	}
}

// A listener and its connections, served from one goroutine: accept,
// read until EAGAIN, answer, and see the end of the stream.
func TestAcceptReadEcho(t *testing.T) {
	ln, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lfd, err := ListenerFD(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(lfd)
	l := newLoop(t)
	var conns, ended int
	var buf [64]byte
	var serve func(fd int) Handler
	serve = func(fd int) Handler {
		return handlerFunc(func() {
			for {
				n, err := syscall.Read(fd, buf[:])
				if err == syscall.EAGAIN {
					return
				}
				if err != nil || n == 0 {
					l.Forget(fd)
					Close(fd)
					ended++
					return
				}
				syscall.Write(fd, buf[:n])
			}
		})
	}
	if err := l.Watch(lfd, handlerFunc(func() {
		for {
			fd, err := Accept(lfd)
			if err == syscall.EAGAIN {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			conns++
			if err := l.Watch(fd, serve(fd)); err != nil {
				t.Error(err)
			}
		}
	})); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			var c net.Conn
			if c, err = net.Dial("unix", ln.Addr().String()); err != nil {
				break
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err = c.Write([]byte("ping")); err == nil {
				var b [4]byte
				if _, err = c.Read(b[:]); err == nil && string(b[:]) != "ping" {
					err = errors.New("echoed " + string(b[:]))
				}
			}
			c.Close()
		}
		done <- err
	}()
	waitFor(t, l, func() bool { return ended == 3 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if conns != 3 {
		t.Fatalf("%d connections accepted, want 3", conns)
	}
}

// Wake interrupts a Wait from another goroutine, also one not yet begun;
// the deadline ends one; Wake after Close is harmless.
func TestWakeAndDeadline(t *testing.T) {
	l := newLoop(t)
	l.Wake()
	if err := l.Wait(time.Time{}); !errors.Is(err, ErrWake) {
		t.Fatalf("Wait after Wake: %v", err)
	}
	go func() { time.Sleep(10 * time.Millisecond); l.Wake() }()
	if err := l.Wait(time.Now().Add(10 * time.Second)); !errors.Is(err, ErrWake) {
		t.Fatalf("Wait during Wake: %v", err)
	}
	start := time.Now()
	if err := l.Wait(start.Add(50 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait to a deadline: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("the deadline ended Wait after %v", d)
	}
	if err := l.Poll(); err != nil {
		t.Fatalf("Poll with nothing ready: %v", err)
	}
	l.Close()
	l.Wake()
}

// An unwatched descriptor is not reported any more.
func TestUnwatch(t *testing.T) {
	l := newLoop(t)
	fds := socketpair(t)
	calls := 0
	if err := l.Watch(fds[0], handlerFunc(func() { calls++ })); err != nil {
		t.Fatal(err)
	}
	syscall.Write(fds[1], []byte("x"))
	waitFor(t, l, func() bool { return calls == 1 })
	if err := l.Unwatch(fds[0]); err != nil {
		t.Fatal(err)
	}
	syscall.Write(fds[1], []byte("y"))
	if err := l.Wait(time.Now().Add(50 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) || calls != 1 {
		t.Fatalf("after Unwatch: %v, %d calls", err, calls)
	}
}

func TestPeerAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, _ := c.(*net.TCPConn).SyscallConn()
	var a net.Addr
	sc.Control(func(fd uintptr) { a = PeerAddr(int(fd)) })
	if a == nil || a.String() != ln.Addr().String() {
		t.Fatalf("PeerAddr %v, want %v", a, ln.Addr())
	}
}

// A Handler learns that the peer has shut down its side with the data
// that came before, from HungUp; not before.
func TestHungUp(t *testing.T) {
	l := newLoop(t)
	fds := socketpair(t)
	var seen []bool
	if err := l.Watch(fds[0], handlerFunc(func() { seen = append(seen, l.HungUp()) })); err != nil {
		t.Fatal(err)
	}
	syscall.Write(fds[1], []byte("x"))
	waitFor(t, l, func() bool { return len(seen) == 1 })
	syscall.Write(fds[1], []byte("y"))
	syscall.Shutdown(fds[1], syscall.SHUT_WR)
	waitFor(t, l, func() bool { return len(seen) == 2 })
	if seen[0] || !seen[1] || l.HungUp() {
		t.Fatalf("HungUp in the calls: %v, between them: %v", seen, l.HungUp())
	}
}

// A listener someone made blocking (the Fd of its File does) is made
// non-blocking again by ListenerFD: Accept then returns EAGAIN when there
// is no connection instead of holding its P in a raw accept4.
func TestListenerFDMakesNonblocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
	fd, err := ListenerFD(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		t.Fatal(e)
	}
	if fl&syscall.O_NONBLOCK == 0 {
		t.Fatal("ListenerFD of a blocking listener is blocking: Accept would wait in a raw system call")
	}
	if _, err := Accept(fd); err != syscall.EAGAIN {
		t.Fatalf("Accept with no connection: %v, want EAGAIN", err)
	}
	if changed, err := Nonblock(fd); changed || err != nil {
		t.Fatalf("Nonblock of a non-blocking descriptor: %v, %v", changed, err)
	}
}
