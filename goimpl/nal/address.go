// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"context"
	"hash/maphash"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Limits shared by every object kind (the NAL_*(3) man pages).
const (
	// BufferMaxSize is the largest size of any Buffer and the largest default
	// buffer size of an Address.
	BufferMaxSize = 32768
	// AddressMaxStrLen is the longest accepted address string.
	AddressMaxStrLen = 255
	// ListenerBacklog is the listen(2) backlog of every socket listener.
	ListenerBacklog = 511
	// UnixPathMax is sizeof(sun_path); paths of this length or longer are
	// rejected (the original silently truncated them, EDGES E-29).
	UnixPathMax = 108
)

// addrKind is the Kind of a created Address (kindNone: not created).
type addrKind = Kind

const (
	kindNone = KindNone
	kindIPv4 = KindIPv4
	kindIPv6 = KindIPv6
	kindUnix = KindUnix
	kindFD   = KindFD
)

// Address is a parsed address string (NAL_ADDRESS). The zero value is an
// un-created address with default buffer size 0, like NewAddress().
//
// Not safe for concurrent use.
type Address struct {
	parsed
	defSize uint32
	freed   bool
}

// parsed is what Create makes of an address string: all of an Address but
// its default buffer size.
type parsed struct {
	kind addrKind
	str  string // the string given to Create (for snapshots)

	// kindIPv4 / kindIPv6: the resolved address (zero = wildcard) and port.
	ip   netip.Addr
	port uint16
	// kindUnix: the path as given.
	path string
	// kindFD: the descriptors (-1 = no such direction).
	fdRead, fdWrite int

	canConnect, canListen bool
	// fixed: the string names no host to look up, so creating it again
	// gives the same address (see Fixed).
	fixed bool
}

// NewAddress returns an un-created address (NAL_ADDRESS_new).
func NewAddress() *Address { return &Address{} }

// Free releases the address (NAL_ADDRESS_free). Safe on nil and twice.
func (a *Address) Free() {
	if a == nil {
		return
	}
	a.Reset()
	a.freed = true
}

// Reset returns the address to the un-created state; the default buffer
// size is kept (NAL_ADDRESS_reset).
func (a *Address) Reset() {
	if a == nil {
		return
	}
	a.parsed = parsed{}
}

// Created reports whether Create succeeded and Reset was not called since.
func (a *Address) Created() bool { return a != nil && !a.freed && a.kind != kindNone }

// String returns the address string given to Create ("" if un-created).
func (a *Address) String() string {
	if !a.Created() {
		return ""
	}
	return a.str
}

// DefBufferSize returns the default buffer size (NAL_ADDRESS_get_def_buffer_size).
func (a *Address) DefBufferSize() uint32 {
	if a == nil {
		return 0
	}
	return a.defSize
}

// SetDefBufferSize stores n if n <= BufferMaxSize (NAL_ADDRESS_set_def_buffer_size).
func (a *Address) SetDefBufferSize(n uint32) bool {
	if a == nil || a.freed || n > BufferMaxSize {
		return false
	}
	a.defSize = n
	return true
}

// CanConnect reports whether a connection can be made to the address.
func (a *Address) CanConnect() bool { return a.Created() && a.canConnect }

// CanListen reports whether a listener can be created on the address.
func (a *Address) CanListen() bool { return a.Created() && a.canListen }

// Fixed reports whether the address is created from a string that needs no
// lookup (a literal host, a path, descriptors): Create of the same string,
// on any un-created address and with an acceptable default buffer size,
// succeeds again and gives the same address. The C front relies on it to
// create such a string again without asking the engine.
func (a *Address) Fixed() bool { return a.Created() && a.fixed }

// Create parses s with the address grammar (see Parse) and resolves a host
// name now (NAL_ADDRESS_create). It fails if the address is already created,
// if defBufSize > BufferMaxSize, if Parse refuses s or if the host does not
// resolve. defBufSize is stored before parsing, even if parsing then fails;
// on failure the address is left un-created.
func (a *Address) Create(s string, defBufSize uint32) bool {
	return a.create(s, defBufSize, false)
}

// CreateView is Create for a string whose bytes the caller reuses or frees
// after the call (the cgo layer passes a view of the C caller's string):
// the address keeps a copy of its own.
func (a *Address) CreateView(s string, defBufSize uint32) bool {
	return a.create(s, defBufSize, true)
}

func (a *Address) create(s string, defBufSize uint32, view bool) bool {
	if a == nil || a.freed || a.kind != kindNone {
		return false
	}
	if !a.SetDefBufferSize(defBufSize) {
		return false
	}
	if p, ok := recentGet(s); ok {
		a.parsed = p
		return true
	}
	if view {
		s = strings.Clone(s)
	}
	sp, err := Parse(s)
	if err != nil {
		return false
	}
	p := parsed{kind: addrKind(sp.Kind), str: s, canConnect: sp.CanConnect(), canListen: true}
	// The outcome of a string without a host name to look up is the same
	// every time: it is remembered.
	same := true
	switch sp.Kind {
	case KindIPv4, KindIPv6:
		if ip, ok := sp.Literal(); ok && ip.Zone() == "" {
			p.ip = ip
		} else if p.ip, err = sp.ResolveIP(context.Background()); err != nil {
			return false
		} else {
			same = false
		}
		p.port = sp.Port
	case KindUnix:
		p.path = sp.Path
	case KindFD:
		p.fdRead, p.fdWrite = sp.FDRead, sp.FDWrite
	}
	if same {
		p.fixed = true
		recentPut(p)
	}
	a.parsed = p
	return true
}

// recent remembers what Create made of address strings that need no
// lookup (a literal host, a path, descriptors), so that creating one of
// them again (a program making an address per connection) neither parses
// nor allocates: a table of recentSize entries indexed by a hash of the
// string (a newer string takes its entry's place), read without a lock.
var recent struct {
	seed maphash.Seed
	tab  [recentSize]atomic.Pointer[parsed]
}

const recentSize = 256

func init() { recent.seed = maphash.MakeSeed() }

func recentSlot(s string) *atomic.Pointer[parsed] {
	return &recent.tab[maphash.String(recent.seed, s)%recentSize]
}

func recentGet(s string) (parsed, bool) {
	if p := recentSlot(s).Load(); p != nil && p.str == s {
		return *p, true
	}
	return parsed{}, false
}

func recentPut(p parsed) { recentSlot(p.str).Store(&p) }

// sockaddr returns the socket address and family for IP and UNIX addresses.
func (a *Address) sockaddr() (unix.Sockaddr, int, error) {
	switch a.kind {
	case kindIPv4:
		return &unix.SockaddrInet4{Port: int(a.port), Addr: a.ip.As4()}, unix.AF_INET, nil
	case kindIPv6:
		sa := &unix.SockaddrInet6{Port: int(a.port), Addr: a.ip.As16()}
		if z := a.ip.Zone(); z != "" {
			if n, err := strconv.ParseUint(z, 10, 32); err == nil {
				sa.ZoneId = uint32(n)
			} else if ifi, err := net.InterfaceByName(z); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else {
				return nil, 0, err
			}
		}
		return sa, unix.AF_INET6, nil
	case kindUnix:
		if a.path == "" {
			return nil, 0, unix.EINVAL
		}
		return &unix.SockaddrUnix{Name: unixName(a.path)}, unix.AF_UNIX, nil
	}
	return nil, 0, unix.EINVAL
}

// unixName protects a relative path starting with '@' from being taken as
// an abstract socket name by golang.org/x/sys/unix.
func unixName(path string) string {
	if path[0] == '@' {
		return "./" + path
	}
	return path
}
