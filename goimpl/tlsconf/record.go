// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"crypto/tls"
	"net"
	"sync/atomic"
)

// Conn is a server-side TLS connection made by Server.Handshake. Beyond
// *tls.Conn it can tell whether another whole TLS record has already
// arrived (Pending), so that a server answering pipelined requests can
// hold its answers until it would otherwise wait, and send them in one
// write, as it does on a plaintext connection.
type Conn struct {
	*tls.Conn
	rc *recordConn
}

// Pending reports whether a whole TLS record is buffered, so that the
// next Read will not wait for the network.
func (c *Conn) Pending() bool { return c.rc.wholeRecord() }

// recordConn sits under a tls.Conn: it reads the socket in large chunks
// and hands crypto/tls at most one record at a time, so the bytes after
// the current record stay here, where wholeRecord can see them. It also
// counts the bytes received (a peer that closes before sending anything
// is a port probe).
type recordConn struct {
	net.Conn
	buf  []byte
	r, w int // buf[r:w] is received and not yet handed on
	left int // bytes of the current record not yet handed on
	got  atomic.Int64
}

const recordHeaderLen = 5

func (c *recordConn) fill() error {
	if c.buf == nil {
		c.buf = make([]byte, 32<<10)
	}
	if c.r > 0 && c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.w == len(c.buf) { // make room: move the unread bytes down
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	c.got.Add(int64(n))
	if n > 0 {
		return nil
	}
	return err
}

func (c *recordConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		// At a record's start: have its header, to know its length.
		for c.w-c.r < recordHeaderLen {
			if err := c.fill(); err != nil {
				if c.w > c.r { // a short tail: crypto/tls reports it
					break
				}
				return 0, err
			}
		}
		if c.w-c.r >= recordHeaderLen {
			c.left = recordHeaderLen + (int(c.buf[c.r+3])<<8 | int(c.buf[c.r+4]))
		} else {
			c.left = c.w - c.r
		}
	}
	if c.r == c.w {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p[:min(len(p), c.left)], c.buf[c.r:c.w])
	c.r += n
	c.left -= n
	return n, nil
}

// wholeRecord reports whether a complete record follows the one crypto/tls
// last took.
func (c *recordConn) wholeRecord() bool {
	if c.left != 0 || c.w-c.r < recordHeaderLen {
		return false
	}
	return c.w-c.r >= recordHeaderLen+(int(c.buf[c.r+3])<<8|int(c.buf[c.r+4]))
}
