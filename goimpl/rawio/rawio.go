// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn reads and writes one connection. Reset it for each connection; the
// zero value is ready for Reset.
type Conn struct {
	nc net.Conn
	rc syscall.RawConn // nil: use nc

	// The current call's buffer and outcome, for the poller callbacks
	// (method values made once, so a call allocates nothing).
	p       []byte
	n       int
	errno   syscall.Errno
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
}

// Reset makes c read and write nc: with raw system calls when nc is a
// *net.TCPConn or *net.UnixConn, through nc otherwise.
func (c *Conn) Reset(nc net.Conn) {
	c.nc, c.rc, c.p = nc, nil, nil
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		if rc, err := nc.(syscall.Conn).SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	if c.rc != nil && c.readFn == nil {
		c.readFn, c.writeFn = c.read, c.write
	}
}

// Raw reports whether c uses raw system calls.
func (c *Conn) Raw() bool { return c.rc != nil }

// read is the poller callback of Read: false asks to wait until the socket
// is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.p))), uintptr(len(c.p)))
		switch e {
		case 0:
			c.n, c.errno = int(r), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.n, c.errno = 0, e
		return true
	}
}

// Read reads like net.Conn's Read: io.EOF at the end of the stream,
// deadline and closed-connection errors as net.Conn reports them.
func (c *Conn) Read(p []byte) (int, error) {
	if c.rc == nil {
		return c.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.p = p
	err := c.rc.Read(c.readFn)
	c.p = nil
	if err != nil {
		return 0, err
	}
	if c.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: c.nc.LocalAddr().Network(), Source: c.nc.LocalAddr(), Addr: c.nc.RemoteAddr(), Err: os.NewSyscallError("read", c.errno)}
	}
	if c.n == 0 {
		return 0, io.EOF
	}
	return c.n, nil
}

// write is the poller callback of Write: it writes until c.p is gone or
// the socket has no room (false: wait until it is writable).
func (c *Conn) write(fd uintptr) bool {
	for len(c.p) > 0 {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.p))), uintptr(len(c.p)))
		switch e {
		case 0:
			c.n += int(r)
			c.p = c.p[r:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.errno = e
			return true
		}
	}
	return true
}

// Write writes all of p like net.Conn's Write, or fails saying how much
// was written.
func (c *Conn) Write(p []byte) (int, error) {
	if c.rc == nil {
		return c.nc.Write(p)
	}
	c.p, c.n, c.errno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.p = nil
	if err == nil && c.errno != 0 {
		err = &net.OpError{Op: "write", Net: c.nc.LocalAddr().Network(), Source: c.nc.LocalAddr(), Addr: c.nc.RemoteAddr(), Err: os.NewSyscallError("write", c.errno)}
	}
	return c.n, err
}
