package nal

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Limits shared by every object kind (LIBNAL.md §0).
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

// lookupNetIP resolves host names; tests replace it.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// ResolveTimeout bounds the host name lookup done by Address.Create.
const ResolveTimeout = 10 * time.Second

type addrKind uint8

const (
	kindNone addrKind = iota
	kindIPv4
	kindIPv6
	kindUnix
	kindFD
)

// Address is a parsed address string (NAL_ADDRESS). The zero value is an
// un-created address with default buffer size 0, like NewAddress().
//
// Not safe for concurrent use.
type Address struct {
	kind    addrKind
	defSize uint32
	str     string // the string given to Create (for snapshots)

	// kindIPv4 / kindIPv6: the resolved address (zero = wildcard) and port.
	ip   netip.Addr
	port uint16
	// kindUnix: the path as given.
	path string
	// kindFD: the descriptors (-1 = no such direction).
	fdRead, fdWrite int

	canConnect, canListen bool
	freed                 bool
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
	d := a.defSize
	*a = Address{defSize: d, freed: a.freed}
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

// Create parses s (NAL_ADDRESS_create). It fails if the address is already
// created, if defBufSize > BufferMaxSize, if len(s) is outside
// 2..AddressMaxStrLen, if no prefix matches or if parsing (including host
// name resolution) fails. defBufSize is stored before parsing, even if
// parsing then fails; on failure the address is left un-created.
//
// Syntax (prefixes are case-sensitive):
//
//	IP:<port>  IP::<port>  IP:<host>:<port>   TCP/IPv4; IPv4: is a synonym.
//	           Without a host the address is listen-only (INADDR_ANY).
//	           The host ends at the first ':' and is resolved now (IPv4
//	           only, first address). <port> follows strtoul(3): optional
//	           leading white space and sign, decimal, <= 65535.
//	IPv6:<port>  IPv6::<port>        extension: listen-only wildcard (::),
//	           IPV6_V6ONLY, so it can coexist with IP:<port>.
//	IPv6:[<addr>]:<port>             extension: connect and listen; <addr>
//	           is an IPv6 literal (a %zone is allowed) or a host name
//	           resolved now (IPv6 addresses only).
//	UNIX:<path>                      unix stream socket; path < 108 bytes.
//	FD:<n>  FD:<r>:<w>               pre-opened descriptors (n >= 0; r or w,
//	           not both, may be -1; values <= 65535; values below -1 are
//	           rejected, unlike the original).
func (a *Address) Create(s string, defBufSize uint32) bool {
	if a == nil || a.freed || a.kind != kindNone {
		return false
	}
	if !a.SetDefBufferSize(defBufSize) {
		return false
	}
	if len(s) < 2 || len(s) > AddressMaxStrLen {
		return false
	}
	var ok bool
	switch {
	case strings.HasPrefix(s, "IP:"):
		ok = a.parseIPv4(s[3:])
	case strings.HasPrefix(s, "IPv4:"):
		ok = a.parseIPv4(s[5:])
	case strings.HasPrefix(s, "UNIX:"):
		ok = a.parseUnix(s[5:])
	case strings.HasPrefix(s, "IPv6:"):
		ok = a.parseIPv6(s[5:])
	case strings.HasPrefix(s, "FD:"):
		ok = a.parseFD(s[3:])
	}
	if !ok {
		a.Reset()
		return false
	}
	a.str = s
	return true
}

func (a *Address) parseIPv4(rest string) bool {
	if rest == "" {
		return false
	}
	i := strings.IndexByte(rest, ':')
	portStr := rest
	if i > 0 {
		ip, ok := resolve4(rest[:i])
		if !ok {
			return false
		}
		a.ip = ip
		a.canConnect = true
		portStr = rest[i+1:]
	} else if i == 0 {
		portStr = rest[1:]
	}
	port, ok := parsePort(portStr)
	if !ok {
		return false
	}
	if !a.ip.IsValid() {
		a.ip = netip.IPv4Unspecified()
	}
	a.port = port
	a.canListen = true
	a.kind = kindIPv4
	return true
}

func (a *Address) parseIPv6(rest string) bool {
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 2 || len(rest) < end+2 || rest[end+1] != ':' {
			return false
		}
		ip, ok := resolve6(rest[1:end])
		if !ok {
			return false
		}
		port, ok := parsePort(rest[end+2:])
		if !ok {
			return false
		}
		a.ip, a.port = ip, port
		a.canConnect, a.canListen = true, true
		a.kind = kindIPv6
		return true
	}
	rest = strings.TrimPrefix(rest, ":")
	if strings.ContainsRune(rest, ':') {
		return false
	}
	port, ok := parsePort(rest)
	if !ok {
		return false
	}
	a.ip, a.port = netip.IPv6Unspecified(), port
	a.canListen = true
	a.kind = kindIPv6
	return true
}

func (a *Address) parseUnix(path string) bool {
	if len(path) >= UnixPathMax || strings.IndexByte(path, 0) >= 0 {
		return false
	}
	a.path = path
	a.canConnect, a.canListen = true, true
	a.kind = kindUnix
	return true
}

func (a *Address) parseFD(rest string) bool {
	v, tail, ok := strtol(rest)
	if !ok || v < -1 || v > 65535 {
		return false
	}
	switch {
	case tail == "":
		if v < 0 {
			return false
		}
		a.fdRead, a.fdWrite = int(v), int(v)
	case tail[0] == ':':
		w, tail2, ok := strtol(tail[1:])
		if !ok || tail2 != "" || w < -1 || w > 65535 || (v < 0 && w < 0) {
			return false
		}
		a.fdRead, a.fdWrite = int(v), int(w)
	default:
		return false
	}
	a.canConnect, a.canListen = true, true
	a.kind = kindFD
	return true
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtol parses like strtol(s, &end, 10) for values that fit in an int64:
// leading C white space, an optional sign, then at least one decimal digit.
// It returns the value, the unparsed tail, and false when there were no
// digits or the value overflowed.
func strtol(s string) (int64, string, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v > (1<<62)/10 {
			return 0, s, false
		}
		v = v*10 + int64(s[i]-'0')
		i++
	}
	if i == start {
		return 0, s, false
	}
	if neg {
		v = -v
	}
	return v, s[i:], true
}

// parsePort accepts what strtoul(s, &end, 10) <= 65535 with *end == '\0'
// accepts: "-0" is 0, any other negative value wraps to a huge number.
func parsePort(s string) (uint16, bool) {
	v, tail, ok := strtol(s)
	if !ok || tail != "" || v < 0 || v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// inetAton parses the numbers-and-dots forms accepted by inet_aton(3)
// (a, a.b, a.b.c, a.b.c.d; each part decimal, 0octal or 0xhex), which
// gethostbyname(3) accepts as literal addresses.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base := uint64(10)
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		var v uint64
		for j := 0; j < len(p); j++ {
			c := p[j]
			var d uint64
			switch {
			case c >= '0' && c <= '9':
				d = uint64(c - '0')
			case c >= 'a' && c <= 'f':
				d = uint64(c-'a') + 10
			case c >= 'A' && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				return netip.Addr{}, false
			}
			if d >= base {
				return netip.Addr{}, false
			}
			v = v*base + d
			if v > 0xffffffff {
				return netip.Addr{}, false
			}
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 255 {
			return netip.Addr{}, false
		}
		n |= vals[i] << (24 - 8*uint(i))
	}
	if vals[last] > 0xffffffff>>(8*uint(last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func resolve4(host string) (netip.Addr, bool) {
	if ip, ok := inetAton(host); ok {
		return ip, true
	}
	if strings.ContainsAny(host, " \t\n\r\x00") {
		return netip.Addr{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), ResolveTimeout)
	defer cancel()
	ips, err := lookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, false
	}
	return ips[0].Unmap(), true
}

func resolve6(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Is6() || ip.Is4In6() {
			return netip.Addr{}, false
		}
		return ip, true
	}
	if strings.ContainsAny(host, " \t\n\r\x00%") {
		return netip.Addr{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), ResolveTimeout)
	defer cancel()
	ips, err := lookupNetIP(ctx, "ip6", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, false
	}
	for _, ip := range ips {
		if ip.Is6() && !ip.Is4In6() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

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
