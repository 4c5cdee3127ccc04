// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"golang.org/x/sys/unix"
)

type connKind uint8

const (
	connNone connKind = iota
	connSock          // TCP, unix socket or socketpair end: one descriptor
	connFD            // FD: address: read and write descriptors
)

// Connection is a non-blocking byte stream with a read and a send buffer
// (NAL_CONNECTION). Applications consume from Read() and append to Send();
// system calls happen only in IO. The buffers are allocated by
// NewConnection and stay the same objects for the life of the connection.
//
// Not safe for concurrent use.
type Connection struct {
	kind        connKind
	fd          int    // connSock
	tcp         bool   // connSock over TCP
	rf, wf      fdFile // connFD; fd -1 = no such direction
	established bool
	addr        string // address string it was created from ("" for pairs/accepts)

	read, send *Buffer

	sel            *Selector
	selIdx         int
	rdy, wry, excy bool // readiness recorded by the last select
	freed          bool
}

// NewConnection returns an unused connection (NAL_CONNECTION_new).
func NewConnection() *Connection {
	return &Connection{fd: -1, read: NewBuffer(), send: NewBuffer(), rf: noFile, wf: noFile}
}

func (c *Connection) usable() bool { return c != nil && !c.freed && c.read != nil }

// Live reports whether the connection was created, accepted or paired and
// not reset since.
func (c *Connection) Live() bool { return c.usable() && c.kind != connNone }

// Free unbinds the connection from its selector, closes its descriptors
// and releases its buffers (NAL_CONNECTION_free). No unsent data is
// flushed. Safe on nil and twice.
func (c *Connection) Free() {
	if !c.usable() {
		return
	}
	c.Reset()
	c.read.Free()
	c.send.Free()
	c.freed = true
}

// Reset unbinds, closes the descriptors and empties both buffers; the
// connection becomes unused and reusable (NAL_CONNECTION_reset).
func (c *Connection) Reset() {
	if !c.usable() {
		return
	}
	c.DelFromSelector()
	c.closeFDs()
	c.read.Reset()
	c.send.Reset()
	c.kind, c.tcp, c.established, c.addr = connNone, false, false, ""
}

// Detach hands over the descriptor of an established socket connection
// whose buffers are empty: the connection becomes unused (as after
// Reset) without closing it, and the caller owns the descriptor (the C
// library's fast path takes its kept connections this way). It returns
// -1, changing nothing, for any other connection.
func (c *Connection) Detach() int {
	if !c.usable() || c.kind != connSock || !c.established || c.read.NotEmpty() || c.send.NotEmpty() {
		return -1
	}
	fd := c.fd
	c.fd = -1
	c.Reset()
	return fd
}

func (c *Connection) closeFDs() {
	switch c.kind {
	case connSock:
		closeFD(c.fd)
	case connFD:
		c.rf.release()
		c.wf.release()
		closeFD(c.rf.orig)
		if c.wf.orig != c.rf.orig {
			closeFD(c.wf.orig)
		}
	}
	c.fd = -1
	c.rf, c.wf = noFile, noFile
}

func (c *Connection) sizeBuffers(r, s uint32) bool {
	return c.read.SetSize(r) && c.send.SetSize(s)
}

// Create connects to addr (NAL_CONNECTION_create). It fails if the
// connection is live or addr cannot connect. TCP connects are
// non-blocking: Create may succeed with IsEstablished() false, and a
// refused connect then shows up as a false IO() after a select. Both
// buffers get addr.DefBufferSize(). On failure the connection is unused.
func (c *Connection) Create(addr *Address) bool {
	if !c.usable() || c.kind != connNone || !addr.CanConnect() {
		return false
	}
	var ok bool
	switch addr.kind {
	case kindIPv4, kindIPv6, kindUnix:
		ok = c.connectSock(addr)
	case kindFD:
		ok = c.wrapFD(addr.fdRead, addr.fdWrite, addr.defSize)
	}
	if !ok {
		c.Reset()
		return false
	}
	c.addr = addr.str
	return true
}

func (c *Connection) connectSock(addr *Address) bool {
	sa, family, err := addr.sockaddr()
	if err != nil {
		return false
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	c.kind, c.fd = connSock, fd
	c.tcp = addr.kind != kindUnix
	if c.tcp && setNoDelay(fd) != nil {
		return false
	}
	err = unix.Connect(fd, sa)
	switch err {
	case nil:
		c.established = true
	case unix.EINPROGRESS:
		if !c.tcp {
			return false
		}
	default:
		return false
	}
	return c.sizeBuffers(addr.defSize, addr.defSize)
}

// wrapFD takes descriptors r and w (-1 = no such direction). On failure
// it undoes its own changes and leaves the descriptors open and unowned.
func (c *Connection) wrapFD(r, w int, size uint32) bool {
	rf, wf := noFile, noFile
	var err error
	switch {
	case r >= 0 && r == w:
		// One descriptor for both directions: rf owns any saved flags.
		rf, err = openFDFile(r, unix.O_RDWR)
		wf = rf
		wf.oldFlags = -1
	default:
		if r >= 0 {
			rf, err = openFDFile(r, unix.O_RDONLY)
		}
		if err == nil && w >= 0 {
			wf, err = openFDFile(w, unix.O_WRONLY)
		}
	}
	var rs, ss uint32
	if r >= 0 {
		rs = size
	}
	if w >= 0 {
		ss = size
	}
	if err != nil || !c.sizeBuffers(rs, ss) {
		rf.release()
		wf.release()
		return false
	}
	c.kind, c.rf, c.wf, c.established = connFD, rf, wf, true
	return true
}

// Accept takes the connection recorded as pending on l by the last select
// (NAL_CONNECTION_accept). At most one connection is accepted per listener
// per select round. Fails if c is live or nothing is pending; a failed
// accept(2) clears the pending state so the listener is polled again
// (EDGES E-25). Both buffers get the listener's default size.
func (c *Connection) Accept(l *Listener) bool {
	if !c.usable() || c.kind != connNone || !l.Live() || !l.caught {
		return false
	}
	l.caught = false
	if l.kind == kindFD {
		if l.accepted {
			return false
		}
		if !c.wrapFD(l.rfd, l.wfd, l.defSize) {
			return false
		}
		l.accepted = true
		return true
	}
	fd, _, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return false
	}
	c.kind, c.fd, c.tcp, c.established = connSock, fd, l.kind != kindUnix, true
	if (c.tcp && setNoDelay(fd) != nil) || !c.sizeBuffers(l.defSize, l.defSize) {
		c.Reset()
		return false
	}
	return true
}

// CreatePair connects c and c2 with socketpair(AF_UNIX, SOCK_STREAM); both
// are established with all four buffers of the given size
// (NAL_CONNECTION_create_pair). Both must be unused and distinct; size
// must be <= BufferMaxSize (checked first, so a failure leaves both unused).
func (c *Connection) CreatePair(c2 *Connection, size uint32) bool {
	if !c.usable() || !c2.usable() || c == c2 || c.kind != connNone || c2.kind != connNone || size > BufferMaxSize {
		return false
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	c.kind, c.fd, c.established = connSock, fds[0], true
	c2.kind, c2.fd, c2.established = connSock, fds[1], true
	if !c.sizeBuffers(size, size) || !c2.sizeBuffers(size, size) {
		c.Reset()
		c2.Reset()
		return false
	}
	return true
}

// SetSize resizes both buffers; a real size change discards their contents
// (NAL_CONNECTION_set_size). Fails if unused or size > BufferMaxSize.
func (c *Connection) SetSize(size uint32) bool {
	if !c.Live() || size > BufferMaxSize {
		return false
	}
	return c.sizeBuffers(size, size)
}

// Read returns the read buffer, nil while unused (NAL_CONNECTION_get_read).
func (c *Connection) Read() *Buffer {
	if !c.Live() {
		return nil
	}
	return c.read
}

// Send returns the send buffer, nil while unused (NAL_CONNECTION_get_send).
func (c *Connection) Send() *Buffer {
	if !c.Live() {
		return nil
	}
	return c.send
}

// IsEstablished is false while unused or while a TCP connect is pending.
func (c *Connection) IsEstablished() bool { return c.Live() && c.established }

// AddToSelector binds c to sel (NAL_CONNECTION_add_to_selector). Fails if
// c is unused, already bound (to any selector) or sel is not usable.
func (c *Connection) AddToSelector(sel *Selector) bool {
	if !c.Live() || c.sel != nil || !sel.usable() {
		return false
	}
	sel.addConn(c)
	return true
}

// DelFromSelector unbinds c (no-op if unbound) and clears its recorded
// readiness (NAL_CONNECTION_del_from_selector).
func (c *Connection) DelFromSelector() {
	if c == nil || c.sel == nil {
		return
	}
	c.sel.delConn(c)
	c.rdy, c.wry, c.excy = false, false, false
}

// Selector returns the selector c is bound to, or nil.
func (c *Connection) Selector() *Selector {
	if c == nil {
		return nil
	}
	return c.sel
}

// IO performs the I/O that the last select on c's selector found possible
// and reports whether the connection is still alive (NAL_CONNECTION_io).
// It returns false if c is unused or not bound to a selector, if an error
// condition was recorded, if a pending connect failed, on a read or write
// error, and on end of file (after one attempt to flush pending output,
// EDGES E-12). EAGAIN/EINTR mean "nothing happened" (E-26). Recorded
// readiness is consumed: a second IO without a new select does nothing.
// Writes use MSG_NOSIGNAL on sockets, so no SIGPIPE is raised (E-32).
func (c *Connection) IO() bool {
	if !c.Live() || c.sel == nil {
		return false
	}
	rd, wr, exc := c.rdy, c.wry, c.excy
	c.rdy, c.wry, c.excy = false, false, false
	if exc {
		return false
	}
	if !c.established {
		if !wr {
			return true
		}
		soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil || soerr != 0 {
			return false
		}
		c.established = true
	}
	if rd && c.read.NotFull() {
		n, err := c.sysRead(c.read.WritePtr())
		switch {
		case n > 0:
			c.read.Wrote(uint32(n))
		case err == nil: // end of file
			c.flush()
			return false
		case !transient(err):
			return false
		}
	}
	if wr && c.send.NotEmpty() {
		n, err := c.sysWrite(c.send.Data())
		if n > 0 {
			c.send.Discard(uint32(n))
		} else if err != nil && !transient(err) {
			return false
		}
	}
	return true
}

// WriteNow writes what the send buffer holds without waiting for a
// selector to report the connection writable: a request on an established
// connection almost always fits the socket's buffer, so the caller saves a
// poll. It never blocks; a full socket is not an error (the rest goes with
// the next IO). False if the connection is not usable or the write failed
// for good.
func (c *Connection) WriteNow() bool {
	if !c.Live() {
		return false
	}
	if !c.established || c.send.Empty() {
		return true
	}
	n, err := c.sysWrite(c.send.Data())
	if n > 0 {
		c.send.Discard(uint32(n))
		return true
	}
	return err == nil || transient(err)
}

// flush makes one attempt to write pending output (after end of file).
func (c *Connection) flush() {
	if c.send.NotEmpty() {
		if n, _ := c.sysWrite(c.send.Data()); n > 0 {
			c.send.Discard(uint32(n))
		}
	}
}

func (c *Connection) sysRead(p []byte) (int, error) {
	if c.kind == connFD {
		if c.rf.fd < 0 {
			return 0, unix.EAGAIN
		}
		return c.rf.read(p)
	}
	var n int
	var err error
	if c.sel != nil && c.sel.raw {
		n, err = rawRead(c.fd, p)
	} else {
		n, err = unix.Read(c.fd, p)
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

func (c *Connection) sysWrite(p []byte) (int, error) {
	if c.kind == connFD {
		if c.wf.fd < 0 {
			return 0, unix.EAGAIN
		}
		n, err := c.wf.write(p)
		if n < 0 {
			n = 0
		}
		return n, err
	}
	var n int
	var err error
	if c.sel != nil && c.sel.raw {
		n, err = rawSend(c.fd, p)
	} else {
		n, err = unix.SendmsgN(c.fd, p, nil, nil, unix.MSG_NOSIGNAL)
	}
	if n < 0 {
		n = 0
	}
	return n, err
}
