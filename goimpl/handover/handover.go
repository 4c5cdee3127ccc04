// SPDX-License-Identifier: Apache-2.0

// Package handover passes live client connections from a daemon to the
// process that replaces it (a re-exec): each connection's descriptor goes
// over a unix socket pair (SCM_RIGHTS) together with what the old process
// holds for it and has not finished with, the answers not yet written and
// the request bytes read but not yet answered, so that a connection is
// served by exactly one process at a time and its client notices nothing.
//
// On the wire (SOCK_SEQPACKET, so packets keep their bounds): a header
// packet carrying the descriptor and the two lengths (4 bytes each,
// big-endian), then those bytes in packets of at most chunk bytes.
package handover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const chunk = 32 << 10

// Sender is the old process's end.
type Sender struct {
	mu sync.Mutex
	c  *net.UnixConn
}

// Pair makes the socket pair: the Sender, and the file the successor
// inherits (NewReceiver's argument there). The caller closes the file once
// the successor has started.
func Pair() (*Sender, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	remote := os.NewFile(uintptr(fds[1]), "handover-conns")
	c, err := fileConn(os.NewFile(uintptr(fds[0]), "handover-conns"))
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	return &Sender{c: c}, remote, nil
}

func fileConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, errors.New("handover: not a unix socket")
	}
	return uc, nil
}

// Send passes nc with its unwritten answers (out) and its unanswered
// request bytes (in), then closes this process's descriptor of it (the
// connection itself stays open: the successor holds it). nc must be a
// plain TCP or unix connection. On an error nc is left open.
func (s *Sender) Send(nc net.Conn, out, in []byte) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("handover: a %T cannot be passed", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(len(out))), uint32(len(in)))
	s.mu.Lock()
	defer s.mu.Unlock()
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = s.c.WriteMsgUnix(hdr, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	for _, b := range [][]byte{out, in} {
		for len(b) > 0 {
			n := min(len(b), chunk)
			if _, err := s.c.Write(b[:n]); err != nil {
				// The successor has the descriptor but not all of its
				// bytes: it drops the connection. Neither may serve it.
				nc.Close()
				return err
			}
			b = b[n:]
		}
	}
	return nc.Close()
}

// Close tells the successor that no more connections come.
func (s *Sender) Close() error { return s.c.Close() }

// Receiver is the successor's end.
type Receiver struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

// NewReceiver takes the inherited end of a Pair.
func NewReceiver(f *os.File) (*Receiver, error) {
	c, err := fileConn(f)
	if err != nil {
		return nil, err
	}
	return &Receiver{c: c, buf: make([]byte, chunk), oob: make([]byte, unix.CmsgSpace(4*4))}, nil
}

// Receive returns the next connection with its unwritten answers and its
// unanswered request bytes, or io.EOF once the sender has closed.
func (r *Receiver) Receive() (nc net.Conn, out, in []byte, err error) {
	n, oobn, _, _, err := r.c.ReadMsgUnix(r.buf[:8], r.oob)
	if errors.Is(err, io.EOF) || err == nil && n == 0 && oobn == 0 {
		return nil, nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(r.oob[:oobn]); err == nil {
		for _, m := range msgs {
			if f, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, f...)
			}
		}
	}
	if n != 8 || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, nil, fmt.Errorf("handover: malformed packet (%d bytes, %d descriptors)", n, len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "handed-over")
	nc, err = net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil, nil, err
	}
	lens := [2]int{int(binary.BigEndian.Uint32(r.buf)), int(binary.BigEndian.Uint32(r.buf[4:]))}
	var parts [2][]byte
	for i, want := range lens {
		b := make([]byte, 0, want)
		for len(b) < want {
			k, err := r.c.Read(r.buf[:min(chunk, want-len(b))])
			if err == nil && k == 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				nc.Close()
				return nil, nil, nil, err
			}
			b = append(b, r.buf[:k]...)
		}
		parts[i] = b
	}
	return nc, parts[0], parts[1], nil
}

// Close closes the receiving end.
func (r *Receiver) Close() error { return r.c.Close() }
