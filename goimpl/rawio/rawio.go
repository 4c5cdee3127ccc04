// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn reads and writes one connection. Reset it for each connection; the
// zero value is ready for Reset. As with net.Conn, one Read and one Write
// may run at the same time, not two of either.
type Conn struct {
	// WriteWait, when set, is called when a Write is about to wait for
	// room, once per Write (with a connection that is not read raw:
	// before every Write). A caller can so set the write deadline only
	// for the writes that wait, instead of a timer update for every one.
	WriteWait func()
	// NoWait has Read of a raw connection (Reset) return ErrWouldBlock
	// instead of waiting, for an event loop that watches the socket
	// itself; set it only while no Read runs.
	NoWait bool
	// drained: the last NoWait read took less than it could, so the
	// socket had nothing more (Readable clears it).
	drained bool

	nc net.Conn
	rc syscall.RawConn // nil: use nc, or fd when nb
	fd int             // ResetFD's descriptor
	nb bool            // fd, never waiting (ResetFD)

	// The current calls' buffers and outcomes, for the poller callbacks
	// (method values made once, so a call allocates nothing).
	r, w    op
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
	tryRFn  func(uintptr) bool
	tryWFn  func(uintptr) bool
}

type op struct {
	p       []byte
	n       int
	errno   syscall.Errno
	waited  bool
	blocked bool // a try found the socket not ready (NoWait, TryWrite)
}

// ErrWouldBlock is what Read and Write of a descriptor given to ResetFD
// return instead of waiting (Write with how much it wrote).
var ErrWouldBlock = errors.New("rawio: the call would block")

// Reset makes c read and write nc: with raw system calls when nc is a
// *net.TCPConn or *net.UnixConn, through nc otherwise.
func (c *Conn) Reset(nc net.Conn) {
	c.nc, c.rc, c.r, c.w, c.nb = nc, nil, op{}, op{}, false
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		if rc, err := nc.(syscall.Conn).SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	if c.rc != nil && c.readFn == nil {
		c.readFn, c.writeFn = c.read, c.write
		c.tryRFn, c.tryWFn = c.tryRead, c.tryWrite
	}
}

// ResetFD makes c read and write the non-blocking socket fd with raw
// system calls that never wait: where they would, Read and Write return
// ErrWouldBlock (an evloop.Loop says when to try again). WriteWait is not
// called.
func (c *Conn) ResetFD(fd int) {
	c.nc, c.rc, c.r, c.w = nil, nil, op{}, op{}
	c.fd, c.nb = fd, true
}

// Raw reports whether c uses raw system calls.
func (c *Conn) Raw() bool { return c.rc != nil || c.nb }

// read is the poller callback of Read: false asks to wait until the socket
// is readable.
func (c *Conn) read(fd uintptr) bool {
	o := &c.r
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(o.p))), uintptr(len(o.p)))
		switch e {
		case 0:
			o.n, o.errno = int(r), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		o.n, o.errno = 0, e
		return true
	}
}

// Read reads like net.Conn's Read: io.EOF at the end of the stream,
// deadline and closed-connection errors as net.Conn reports them.
func (c *Conn) Read(p []byte) (int, error) {
	if c.rc == nil && !c.nb {
		return c.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.r.p = p
	if c.nb {
		if !c.read(uintptr(c.fd)) {
			c.r.p = nil
			return 0, ErrWouldBlock
		}
		c.r.p = nil
		return c.result()
	}
	if c.NoWait {
		if c.drained {
			c.r.p = nil
			return 0, ErrWouldBlock
		}
		c.r.blocked = false
		err := c.rc.Read(c.tryRFn)
		c.r.p = nil
		if err != nil {
			return 0, err
		}
		if c.r.blocked {
			return 0, ErrWouldBlock
		}
		c.drained = c.r.errno == 0 && c.r.n > 0 && c.r.n < len(p)
		return c.result()
	}
	err := c.rc.Read(c.readFn)
	c.r.p = nil
	if err != nil {
		return 0, err
	}
	return c.result()
}

func (c *Conn) result() (int, error) {
	if c.r.errno != 0 {
		return 0, c.opError("read", c.r.errno)
	}
	if c.r.n == 0 {
		return 0, io.EOF
	}
	return c.r.n, nil
}

// write is the poller callback of Write: it writes until c.w.p is gone or
// the socket has no room (false: wait until it is writable).
func (c *Conn) write(fd uintptr) bool {
	o := &c.w
	for len(o.p) > 0 {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(o.p))), uintptr(len(o.p)))
		switch e {
		case 0:
			o.n += int(r)
			o.p = o.p[r:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			if !o.waited && c.WriteWait != nil {
				o.waited = true
				c.WriteWait()
			}
			return false
		default:
			o.errno = e
			return true
		}
	}
	return true
}

// Readable tells a NoWait Conn that its socket has become readable: a
// read that took less than it asked for (a stream socket's read empties
// its queue then) has NoWait's next Read say ErrWouldBlock without the
// system call that would find nothing, until Readable is called. For an
// event loop watching the socket edge-triggered, which reports what
// comes after that read.
func (c *Conn) Readable() { c.drained = false }

// tryRead is read for NoWait: it never asks to wait.
func (c *Conn) tryRead(fd uintptr) bool {
	c.r.blocked = !c.read(fd)
	return true
}

// tryWrite is write for TryWrite: it never asks to wait.
func (c *Conn) tryWrite(fd uintptr) bool {
	c.w.blocked = !c.write(fd)
	return true
}

// TryWrite is Write without the waiting, for a raw connection (Reset) or a
// descriptor (ResetFD): what the socket takes now, and ErrWouldBlock when
// that is not all of p. Other connections are written as by Write.
func (c *Conn) TryWrite(p []byte) (int, error) {
	if c.rc == nil {
		return c.Write(p)
	}
	c.w = op{p: p, waited: true} // no WriteWait
	err := c.rc.Write(c.tryWFn)
	c.w.p = nil
	switch {
	case err != nil:
		return c.w.n, err
	case c.w.errno != 0:
		return c.w.n, c.opError("write", c.w.errno)
	case c.w.blocked:
		return c.w.n, ErrWouldBlock
	}
	return c.w.n, nil
}

// Write writes all of p like net.Conn's Write, or fails saying how much
// was written.
func (c *Conn) Write(p []byte) (int, error) {
	if c.nb {
		c.w = op{p: p, waited: true} // no WriteWait
		done := c.write(uintptr(c.fd))
		c.w.p = nil
		switch {
		case c.w.errno != 0:
			return c.w.n, c.opError("write", c.w.errno)
		case !done:
			return c.w.n, ErrWouldBlock
		}
		return c.w.n, nil
	}
	if c.rc == nil {
		if c.WriteWait != nil {
			c.WriteWait()
		}
		return c.nc.Write(p)
	}
	c.w = op{p: p}
	err := c.rc.Write(c.writeFn)
	c.w.p = nil
	if err == nil && c.w.errno != 0 {
		err = c.opError("write", c.w.errno)
	}
	return c.w.n, err
}

// opError is a failed system call as net.Conn reports it, and of a bare
// descriptor (ResetFD), which has no addresses to name, the system call
// alone ("write: broken pipe", not "write: write: broken pipe").
func (c *Conn) opError(call string, e syscall.Errno) error {
	if c.nc == nil {
		return os.NewSyscallError(call, e)
	}
	la := c.nc.LocalAddr()
	return &net.OpError{Op: call, Net: la.Network(), Source: la, Addr: c.nc.RemoteAddr(), Err: os.NewSyscallError(call, e)}
}
