// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"errors"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// nagle is the process-global NAL_config_set_nagle flag (default false:
// TCP_NODELAY is set on every TCP socket created or accepted).
var nagle atomic.Bool

// ConfigSetNagle enables (true) or disables (false, the default) Nagle's
// algorithm on TCP sockets created or accepted after the call
// (NAL_config_set_nagle). Unix sockets and pairs are never touched.
func ConfigSetNagle(enabled bool) { nagle.Store(enabled) }

// NagleEnabled reports the current ConfigSetNagle value.
func NagleEnabled() bool { return nagle.Load() }

// setNoDelay sets TCP_NODELAY unless Nagle was enabled. It uses
// IPPROTO_TCP directly, so it cannot fail for lack of /etc/protocols
// (EDGES E-30).
func setNoDelay(fd int) error {
	if nagle.Load() {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

func closeFD(fd int) {
	if fd >= 0 {
		// Linux closes the descriptor even when close reports EINTR, so
		// it is never retried.
		unix.Close(fd)
	}
}

// transient reports errors that mean "nothing happened, try later"
// (EDGES E-26).
func transient(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR)
}

var noFile = fdFile{fd: -1, orig: -1, oldFlags: -1}

// fdFile describes one pre-opened descriptor of an FD: address as used by
// a connection.
type fdFile struct {
	orig     int  // the descriptor named in the address (closed on close)
	fd       int  // the descriptor used for I/O (== orig unless reopened)
	sock     bool // a socket: use MSG_DONTWAIT, leave its flags alone
	oldFlags int  // flags to restore before close, -1 if untouched
}

// openFDFile prepares descriptor n for non-blocking use without changing
// the open file description it shares with other processes where
// possible (EDGES E-27): sockets use MSG_DONTWAIT; FIFOs are re-opened
// through /proc/self/fd with O_NONBLOCK (a new description); regular files
// never block; anything else (e.g. a terminal) gets O_NONBLOCK set and the
// old flags restored when the connection closes it.
func openFDFile(n int, mode int) (fdFile, error) {
	f := fdFile{orig: n, fd: n, oldFlags: -1}
	var st unix.Stat_t
	if err := unix.Fstat(n, &st); err != nil {
		return f, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		f.sock = true
		return f, nil
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFBLK:
		return f, nil
	case unix.S_IFIFO:
		if mode != unix.O_RDWR {
			if nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(n), mode|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				f.fd = nfd
				return f, nil
			}
		}
	}
	fl, err := unix.FcntlInt(uintptr(n), unix.F_GETFL, 0)
	if err != nil {
		return f, err
	}
	if fl&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_SETFL, fl|unix.O_NONBLOCK); err != nil {
			return f, err
		}
		f.oldFlags = fl
	}
	return f, nil
}

// release undoes openFDFile without closing orig.
func (f *fdFile) release() {
	if f.fd != f.orig {
		closeFD(f.fd)
		f.fd = f.orig
	}
	if f.oldFlags >= 0 {
		unix.FcntlInt(uintptr(f.orig), unix.F_SETFL, f.oldFlags)
		f.oldFlags = -1
	}
}

func (f *fdFile) read(p []byte) (n int, err error) {
	if f.sock {
		n, _, err = unix.Recvfrom(f.fd, p, unix.MSG_DONTWAIT)
	} else {
		n, err = unix.Read(f.fd, p)
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

func (f *fdFile) write(p []byte) (n int, err error) {
	if f.sock {
		n, err = unix.SendmsgN(f.fd, p, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	} else {
		n, err = unix.Write(f.fd, p)
	}
	if n < 0 {
		n = 0
	}
	return n, err
}
