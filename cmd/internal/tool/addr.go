package tool

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
const unixPathMax = 108

// ParseAddr parses the distcache address syntax:
//
//	IP:<port>, IP::<port>, IPv4:<port>   listen on every IPv4 address
//	IP:<host>:<port>, IPv4:<host>:<port> TCP over IPv4
//	IPv6:[<addr>]:<port>, IPv6:<port>    TCP over IPv6 (an extension)
//	UNIX:<path>                          unix stream socket
//	FD:<n>                               an inherited descriptor
func ParseAddr(s string) (Addr, error) {
	a := Addr{Str: s}
	if len(s) < 2 || len(s) > 255 {
		return a, errors.New("address must be 2 to 255 characters long")
	}
	switch {
	case strings.HasPrefix(s, "IP:"), strings.HasPrefix(s, "IPv4:"):
		rest := s[strings.IndexByte(s, ':')+1:]
		a.Network = "tcp4"
		host, port, ok := strings.Cut(rest, ":")
		if !ok {
			host, port = "", rest
		}
		p, err := parsePort(port)
		if err != nil {
			return a, err
		}
		if host == "" {
			a.Wildcard = true
			a.Address = net.JoinHostPort("0.0.0.0", p)
		} else {
			a.Address = net.JoinHostPort(host, p)
		}
	case strings.HasPrefix(s, "IPv6:"):
		rest := s[len("IPv6:"):]
		a.Network = "tcp6"
		if strings.HasPrefix(rest, "[") {
			end := strings.Index(rest, "]:")
			if end < 0 {
				return a, errors.New("IPv6 address must look like IPv6:[addr]:port")
			}
			p, err := parsePort(rest[end+2:])
			if err != nil {
				return a, err
			}
			a.Address = net.JoinHostPort(rest[1:end], p)
		} else {
			p, err := parsePort(rest)
			if err != nil {
				return a, err
			}
			a.Wildcard = true
			a.Address = net.JoinHostPort("::", p)
		}
	case strings.HasPrefix(s, "UNIX:"):
		a.Network = "unix"
		a.Address = s[len("UNIX:"):]
		if a.Address == "" {
			return a, errors.New("empty unix socket path")
		}
		if len(a.Address) >= unixPathMax {
			return a, fmt.Errorf("unix socket path longer than %d bytes", unixPathMax-1)
		}
	case strings.HasPrefix(s, "FD:"):
		a.Network = "fd"
		n, err := strconv.Atoi(s[len("FD:"):])
		if err != nil || n < 0 || n > 65535 {
			return a, errors.New("FD: needs one descriptor number (FD:<r>:<w> is not supported by the tools)")
		}
		a.FD = n
	default:
		return a, errors.New("unknown address type (want IP:, IPv4:, IPv6:, UNIX: or FD:)")
	}
	return a, nil
}

func parsePort(s string) (string, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return "", fmt.Errorf("bad port %q", s)
	}
	return strconv.FormatUint(n, 10), nil
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

// Listen creates a listener. For a unix socket it refuses to take over a
// path where a live server answers, removes a stale socket file left by a
// dead one, and refuses to remove anything that is not a socket.
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
		if fi, err := os.Lstat(a.Address); err == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("%s exists and is not a socket", a.Address)
			}
			if c, err := net.DialTimeout("unix", a.Address, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("%s: another server is already listening there", a.Address)
			}
			if err := os.Remove(a.Address); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("cannot remove stale socket: %v", err)
			}
		}
		ln, err := net.Listen("unix", a.Address)
		if err != nil {
			return nil, err
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		l := &Listener{Listener: ln, Where: a}
		l.sockInfo, _ = os.Lstat(a.Address)
		return l, nil
	}
	ln, err := net.Listen(a.Network, a.Address)
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
// re-executed child.
func (l *Listener) File() (*os.File, error) {
	type filer interface{ File() (*os.File, error) }
	if f, ok := l.Listener.(filer); ok {
		return f.File()
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
