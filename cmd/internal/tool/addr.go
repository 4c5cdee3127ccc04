// SPDX-License-Identifier: Apache-2.0

package tool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/nal"
)

// Addr is a parsed distcache address string.
type Addr struct {
	Str     string // as given (after Abs, with an absolute unix path)
	Network string // "tcp4", "tcp6", "unix" or "fd"
	Address string // host:port for TCP, the path for unix
	FD      int    // for "fd"
	// Wildcard is set for IP:<port> forms: listen-only, like the original.
	Wildcard bool
}

// unixPathMax is sizeof(sun_path) on Linux; longer paths are rejected
// instead of being truncated (EDGES E-29).
const unixPathMax = nal.UnixPathMax

// ParseAddr parses an address by goimpl/nal's grammar (nal.Parse: IP:,
// IPv4:, IPv6:, UNIX:, FD:), with the tools' own limits: a unix path must
// not be empty and FD: takes one descriptor (a listening or connected
// socket), not a read/write pair. A host written as an address (127.1,
// 0x7f000001, ::1) is kept in its numeric form; a host name is left for
// the dialer or listener to resolve.
func ParseAddr(s string) (Addr, error) {
	a := Addr{Str: s}
	sp, err := nal.Parse(s)
	if err != nil {
		return a, err
	}
	a.Network = sp.Network()
	switch sp.Kind {
	case nal.KindIPv4, nal.KindIPv6:
		host := sp.Host
		if ip, ok := sp.Literal(); ok {
			host = ip.String()
		}
		a.Wildcard = sp.Host == ""
		a.Address = net.JoinHostPort(host, strconv.Itoa(int(sp.Port)))
	case nal.KindUnix:
		if sp.Path == "" {
			return a, errors.New("empty unix socket path")
		}
		a.Address = sp.Path
	case nal.KindFD:
		if sp.FDRead != sp.FDWrite {
			return a, errors.New("FD: needs one descriptor number (FD:<r>:<w> is not supported by the tools)")
		}
		a.FD = sp.FDRead
	}
	return a, nil
}

// Abs makes a relative unix socket path absolute (relative to the current
// directory), so the address stays valid after daemonising.
func (a Addr) Abs() Addr {
	if a.Network == "unix" && !filepath.IsAbs(a.Address) {
		if p, err := filepath.Abs(a.Address); err == nil && len(p) < unixPathMax {
			a.Address = p
			a.Str = "UNIX:" + p
		}
	}
	return a
}

// CanConnect reports whether the address names a peer (not a wildcard).
func (a Addr) CanConnect() bool { return !a.Wildcard }

// Dial connects to the address. TCP connections get TCP_NODELAY (Go's
// default), as libdistcache sets it.
func (a Addr) Dial(timeout time.Duration) (net.Conn, error) {
	switch a.Network {
	case "fd":
		f := os.NewFile(uintptr(a.FD), "fd"+strconv.Itoa(a.FD))
		c, err := net.FileConn(f)
		f.Close()
		return c, err
	case "tcp4", "tcp6":
		if a.Wildcard {
			return nil, fmt.Errorf("%s is a listen-only address", a.Str)
		}
	}
	return net.DialTimeout(a.Network, a.Address, timeout)
}

// Listener is a listening socket plus what is needed to clean it up.
type Listener struct {
	net.Listener
	Where Addr
	// unix socket identity, to remove the file only if it is still ours
	sockInfo os.FileInfo
}

// Listen creates a listener. A unix socket is created with mode 0600 (only
// its owner can connect); Listen refuses to take over a path where a live
// server answers, removes a stale socket file left by a dead one, and
// refuses to remove anything that is not a socket.
func Listen(a Addr) (*Listener, error) {
	switch a.Network {
	case "fd":
		f := os.NewFile(uintptr(a.FD), "fd"+strconv.Itoa(a.FD))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		return &Listener{Listener: ln, Where: a}, nil
	case "unix":
		if err := clearUnixPath(a.Address); err != nil { // sock.go
			return nil, err
		}
		// Made owner-only whatever the umask: no other user can connect
		// until -sockgroup or -sockperms say so (Daemon.SetupSocket), and
		// the socket is never more open than asked, not even for a moment.
		old := syscall.Umask(0o177)
		ln, err := net.Listen("unix", a.Address)
		syscall.Umask(old)
		if err != nil {
			return nil, err
		}
		warnSharedDir(a.Address)
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		l := &Listener{Listener: ln, Where: a}
		l.sockInfo, _ = os.Lstat(a.Address)
		return l, nil
	}
	// Plain TCP, not the Multipath TCP that Go's listeners default to:
	// distcache clients (the original library, Apache's module, dc_client)
	// open plain TCP connections, which an MPTCP listener accepts through
	// its fallback, at a cost for each connection.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), a.Network, a.Address)
	if err != nil {
		return nil, err
	}
	return &Listener{Listener: ln, Where: a}, nil
}

// FromFile wraps an inherited listening descriptor (after a re-exec).
func FromFile(f *os.File, a Addr) (*Listener, error) {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	l := &Listener{Listener: ln, Where: a}
	if a.Network == "unix" {
		l.sockInfo, _ = os.Lstat(a.Address)
	}
	return l, nil
}

// File returns a duplicate of the listening descriptor, to hand to a
// re-executed child. Unlike the net package's File, handing it on (its
// Fd, which os.StartProcess calls) leaves the socket non-blocking: the
// mode belongs to the socket, not the descriptor, and dc_server's event
// loop accepts until the socket has no more (goimpl/evloop), which a
// blocking socket would turn into a wait for the next client after a
// re-exec that failed.
func (l *Listener) File() (*os.File, error) {
	fd, err := evloop.ListenerFD(l.Listener)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "listener"), nil
}

// SyscallConn is the listening socket's, so that the daemons' event loops
// accept on it (goimpl/evloop).
func (l *Listener) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := l.Listener.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("listener has no descriptor")
}

// RemoveSocket deletes the unix socket file if it is still the one this
// listener created.
func (l *Listener) RemoveSocket() {
	if l.Where.Network != "unix" || l.sockInfo == nil {
		return
	}
	if fi, err := os.Lstat(l.Where.Address); err == nil && os.SameFile(fi, l.sockInfo) {
		os.Remove(l.Where.Address)
	}
}
