// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// This file is the one address grammar of the project: libnal's
// NAL_ADDRESS_create, the client context (DC_CTX_new, client.Dial), the
// daemons' -listen/-server options and the C front's pre-check
// (capi/front/target.c, which mirrors ParseTarget) all follow it.
// testdata/addresses.txt is the corpus both the Go and the C side are
// tested against.

// Kind is the kind of an address.
type Kind uint8

// Address kinds.
const (
	KindNone Kind = iota
	KindIPv4      // IP: and IPv4:
	KindIPv6      // IPv6:
	KindUnix      // UNIX:
	KindFD        // FD:
)

// ErrAddress is matched (errors.Is) by every error of Parse, ResolveIP and
// ParseTarget.
var ErrAddress = errors.New("invalid address")

// AddressError says why an address string was refused.
type AddressError struct {
	Addr string
	Msg  string
	Err  error // a resolver error, or nil
}

func (e *AddressError) Error() string {
	s := fmt.Sprintf("address %q: %s", e.Addr, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every AddressError match ErrAddress.
func (e *AddressError) Is(target error) bool { return target == ErrAddress }

func (e *AddressError) Unwrap() error { return e.Err }

func addrErr(s, msg string) error { return &AddressError{Addr: s, Msg: msg} }

// Spec is an address string split by the grammar; host names are not
// resolved yet.
type Spec struct {
	Str  string
	Kind Kind
	// KindIPv4, KindIPv6: Host is "" for the listen-only wildcard forms.
	Host string
	Port uint16
	// KindUnix: the socket path as given.
	Path string
	// KindFD: the descriptors (-1 = no such direction).
	FDRead, FDWrite int
}

// Parse splits s by the address grammar (prefixes are case-sensitive, the
// whole string is 2..AddressMaxStrLen bytes):
//
//	IP:<port>  IP::<port>  IP:<host>:<port>   TCP/IPv4; IPv4: is a synonym.
//	           Without a host the address is listen-only (INADDR_ANY).
//	           The host ends at the first ':'; it is a numbers-and-dots
//	           literal as inet_aton(3) reads it (127.1, 0x7f000001, ...)
//	           or a name, resolved to its first IPv4 address.
//	           <port> follows strtoul(3): optional leading white space and
//	           sign, decimal digits, <= 65535 ("-0" is 0).
//	IPv6:<port>  IPv6::<port>        listen-only wildcard (::), IPV6_V6ONLY,
//	           so it can coexist with IP:<port>.
//	IPv6:[<host>]:<port>             an IPv6 literal (not IPv4-mapped; a
//	           %zone is a decimal index or an existing interface) or a
//	           name resolved to its first IPv6 address.
//	UNIX:<path>                      unix stream socket; path < 108 bytes.
//	FD:<n>  FD:<r>:<w>               pre-opened descriptors (n >= 0; r or w,
//	           not both, may be -1; values <= 65535).
//
// Hosts containing white space or NUL are refused.
func Parse(s string) (Spec, error) {
	sp := Spec{Str: s}
	if len(s) < 2 || len(s) > AddressMaxStrLen {
		return sp, addrErr(s, fmt.Sprintf("must be 2 to %d characters long", AddressMaxStrLen))
	}
	var err error
	switch {
	case strings.HasPrefix(s, "IP:"):
		err = sp.parseIPv4(s[3:])
	case strings.HasPrefix(s, "IPv4:"):
		err = sp.parseIPv4(s[5:])
	case strings.HasPrefix(s, "IPv6:"):
		err = sp.parseIPv6(s[5:])
	case strings.HasPrefix(s, "UNIX:"):
		err = sp.parseUnix(s[5:])
	case strings.HasPrefix(s, "FD:"):
		err = sp.parseFD(s[3:])
	default:
		err = addrErr(s, "unknown address type (want IP:, IPv4:, IPv6:, UNIX: or FD:)")
	}
	if err != nil {
		return Spec{Str: s}, err
	}
	return sp, nil
}

func (sp *Spec) parseIPv4(rest string) error {
	portStr := rest
	if i := strings.IndexByte(rest, ':'); i > 0 {
		sp.Host, portStr = rest[:i], rest[i+1:]
		if strings.ContainsAny(sp.Host, badHostChars) {
			return addrErr(sp.Str, "host contains white space")
		}
	} else if i == 0 {
		portStr = rest[1:]
	}
	port, ok := parsePort(portStr)
	if !ok {
		return addrErr(sp.Str, fmt.Sprintf("bad port %q (want 0..65535)", portStr))
	}
	sp.Kind, sp.Port = KindIPv4, port
	return nil
}

func (sp *Spec) parseIPv6(rest string) error {
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 2 || len(rest) < end+2 || rest[end+1] != ':' {
			return addrErr(sp.Str, "want IPv6:[addr]:port")
		}
		host := rest[1:end]
		if ip, err := netip.ParseAddr(host); err == nil {
			if !ip.Is6() || ip.Is4In6() {
				return addrErr(sp.Str, "not an IPv6 address")
			}
		} else if strings.ContainsAny(host, badHostChars+"%") {
			return addrErr(sp.Str, "bad IPv6 address or host name")
		}
		port, ok := parsePort(rest[end+2:])
		if !ok {
			return addrErr(sp.Str, fmt.Sprintf("bad port %q (want 0..65535)", rest[end+2:]))
		}
		sp.Kind, sp.Host, sp.Port = KindIPv6, host, port
		return nil
	}
	rest = strings.TrimPrefix(rest, ":")
	port, ok := parsePort(rest)
	if !ok {
		return addrErr(sp.Str, "want IPv6:port or IPv6:[addr]:port")
	}
	sp.Kind, sp.Port = KindIPv6, port
	return nil
}

func (sp *Spec) parseUnix(path string) error {
	if len(path) >= UnixPathMax {
		return addrErr(sp.Str, fmt.Sprintf("unix socket path longer than %d bytes", UnixPathMax-1))
	}
	if strings.IndexByte(path, 0) >= 0 {
		return addrErr(sp.Str, "unix socket path contains NUL")
	}
	sp.Kind, sp.Path = KindUnix, path
	return nil
}

func (sp *Spec) parseFD(rest string) error {
	bad := addrErr(sp.Str, "want FD:<n> or FD:<r>:<w> (0..65535, -1 for one unused direction)")
	v, tail, ok := strtol(rest)
	if !ok || v < -1 || v > 65535 {
		return bad
	}
	switch {
	case tail == "":
		if v < 0 {
			return bad
		}
		sp.FDRead, sp.FDWrite = int(v), int(v)
	case tail[0] == ':':
		w, tail2, ok := strtol(tail[1:])
		if !ok || tail2 != "" || w < -1 || w > 65535 || (v < 0 && w < 0) {
			return bad
		}
		sp.FDRead, sp.FDWrite = int(v), int(w)
	default:
		return bad
	}
	sp.Kind = KindFD
	return nil
}

// badHostChars may not appear in a host part.
const badHostChars = " \t\n\v\f\r\x00"

// CanConnect reports whether the address names a peer: an IP address with a
// host, a unix socket or descriptors (NAL_ADDRESS_can_connect).
func (sp Spec) CanConnect() bool {
	switch sp.Kind {
	case KindIPv4, KindIPv6:
		return sp.Host != ""
	case KindUnix, KindFD:
		return true
	}
	return false
}

// Network is the Go network name of the address: "tcp4", "tcp6", "unix",
// "fd" ("" for KindNone).
func (sp Spec) Network() string {
	switch sp.Kind {
	case KindIPv4:
		return "tcp4"
	case KindIPv6:
		return "tcp6"
	case KindUnix:
		return "unix"
	case KindFD:
		return "fd"
	}
	return ""
}

// Literal returns the host of an IP address when it is written as an
// address (not a name); for the wildcard forms it returns the unspecified
// address.
func (sp Spec) Literal() (netip.Addr, bool) {
	switch {
	case sp.Kind == KindIPv4 && sp.Host == "":
		return netip.IPv4Unspecified(), true
	case sp.Kind == KindIPv6 && sp.Host == "":
		return netip.IPv6Unspecified(), true
	case sp.Kind == KindIPv4:
		return inetAton(sp.Host)
	case sp.Kind == KindIPv6:
		ip, err := netip.ParseAddr(sp.Host)
		return ip, err == nil
	}
	return netip.Addr{}, false
}

// lookupNetIP resolves host names; tests replace it.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// lookupBounded: ResolveIP bounds lookupNetIP by ResolveTimeout (Go's
// resolver, which honours its context). A lookup given to SetLookup gets
// the caller's context as it is.
var lookupBounded = true

// SetLookup replaces the host name lookup of ResolveIP (nil: Go's
// resolver, bounded by ResolveTimeout); network is "ip4" or "ip6". Call
// it before resolving anything (e.g. in an init). The cgo layer hands it
// the C library's getaddrinfo: a C program's NAL_ADDRESS_create of a name
// then costs what it costs in C (Go's resolver starts goroutines and
// hands the calling thread's work to others for every lookup, and follows
// its own rules, not nsswitch). f is called with ResolveIP's context
// unchanged: no timeout of ResolveIP's own (getaddrinfo has its own, and
// cannot be interrupted; a timer per lookup was 7 % of a C program's
// NAL_ADDRESS_create of "IP:localhost:9001").
func SetLookup(f func(ctx context.Context, network, host string) ([]netip.Addr, error)) {
	lookupBounded = f == nil
	if f == nil {
		f = net.DefaultResolver.LookupNetIP
	}
	lookupNetIP = f
}

// ResolveTimeout bounds one host name lookup by Go's resolver.
const ResolveTimeout = 10 * time.Second

// ResolveIP returns the IP address of an IPv4 or IPv6 address: the
// literal, the wildcard, or the first address of the family its host name
// resolves to (within ResolveTimeout, or the bounds of SetLookup's
// lookup). An IPv6 zone must be a decimal
// interface index or the name of an existing interface.
func (sp Spec) ResolveIP(ctx context.Context) (netip.Addr, error) {
	if sp.Kind != KindIPv4 && sp.Kind != KindIPv6 {
		return netip.Addr{}, addrErr(sp.Str, "not an IP address")
	}
	if ip, ok := sp.Literal(); ok {
		if z := ip.Zone(); z != "" && !validZone(z) {
			return netip.Addr{}, addrErr(sp.Str, "no such interface "+strconv.Quote(z))
		}
		return ip, nil
	}
	network := "ip4"
	if sp.Kind == KindIPv6 {
		network = "ip6"
	}
	if lookupBounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ResolveTimeout)
		defer cancel()
	}
	ips, err := lookupNetIP(ctx, network, sp.Host)
	if err != nil {
		return netip.Addr{}, &AddressError{Addr: sp.Str, Msg: "cannot resolve " + strconv.Quote(sp.Host), Err: err}
	}
	for _, ip := range ips {
		if sp.Kind == KindIPv4 && ip.Unmap().Is4() {
			return ip.Unmap(), nil
		}
		if sp.Kind == KindIPv6 && ip.Is6() && !ip.Is4In6() {
			return ip, nil
		}
	}
	return netip.Addr{}, addrErr(sp.Str, "no "+network+" address for "+strconv.Quote(sp.Host))
}

// validZone accepts a decimal interface index or an existing interface's name.
func validZone(z string) bool {
	if _, err := strconv.ParseUint(z, 10, 32); err == nil && z[0] >= '0' && z[0] <= '9' {
		return true
	}
	_, err := net.InterfaceByName(z)
	return err == nil
}

// Target is a resolved address a client can connect to.
type Target struct {
	Spec
	// Addr is the resolved "ip:port" for TCP, the path for a unix socket.
	Addr string
}

// ParseTarget applies the rule of a client context (DC_CTX_new): s must
// parse, be an IP address with a host (resolved now, once) or a unix
// socket with a non-empty path. FD: addresses are refused: a client opens
// and closes its own connections, which pre-opened descriptors cannot give.
func ParseTarget(ctx context.Context, s string) (Target, error) {
	sp, err := Parse(s)
	if err != nil {
		return Target{}, err
	}
	switch sp.Kind {
	case KindUnix:
		if sp.Path == "" {
			return Target{}, addrErr(s, "empty unix socket path")
		}
		return Target{Spec: sp, Addr: sp.Path}, nil
	case KindFD:
		return Target{}, addrErr(s, "FD: addresses cannot be used by a client")
	}
	if sp.Host == "" {
		return Target{}, addrErr(s, "no host: the address is listen-only")
	}
	ip, err := sp.ResolveIP(ctx)
	if err != nil {
		return Target{}, err
	}
	return Target{Spec: sp, Addr: netip.AddrPortFrom(ip, sp.Port).String()}, nil
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
	var vals [4]uint64
	nv := 0
	for rest, more := s, true; more; nv++ {
		if nv == len(vals) {
			return netip.Addr{}, false
		}
		var p string
		p, rest, more = strings.Cut(rest, ".")
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
		vals[nv] = v
	}
	var n uint64
	last := nv - 1
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

// Canonical is the target written with its resolved address
// (IP:a.b.c.d:port, IPv6:[addr]:port; a unix address as given): an
// address string that parses again without a lookup.
func (t Target) Canonical() string {
	switch t.Kind {
	case KindIPv4:
		ap, _ := netip.ParseAddrPort(t.Addr)
		return "IP:" + ap.Addr().String() + ":" + strconv.Itoa(int(ap.Port()))
	case KindIPv6:
		ap, _ := netip.ParseAddrPort(t.Addr)
		return "IPv6:[" + ap.Addr().String() + "]:" + strconv.Itoa(int(ap.Port()))
	}
	return t.Str
}
