package client

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Address limits shared with libnal (LIBNAL.md §0, §2).
const (
	maxTargetLen = 255 // NAL_ADDRESS_MAX_STR_LEN
	unixPathMax  = 108 // sizeof(sun_path): longer paths are refused, not truncated (EDGES E-29)
)

// resolveTimeout bounds the host name lookup of ParseTarget.
const resolveTimeout = 10 * time.Second

// target is a parsed, connectable address: the network and address given to
// net.Dialer.
type target struct {
	network string // "unix", "tcp4" or "tcp6"
	addr    string // socket path, or resolved "ip:port"
}

var (
	errTargetSyntax     = errors.New("invalid address syntax")
	errTargetListenOnly = errors.New("address has no host: listen-only, a client cannot connect to it")
	errTargetFD         = errors.New("FD: addresses cannot be used by a client context")
)

// ParseTarget reports whether target is a valid connectable distcache
// address (the rule DC_CTX_new applies) without connecting. Host names are
// resolved, as DC_CTX_new resolves them.
//
// Accepted forms (prefixes are case-sensitive, whole string 2..255 bytes):
//
//	IP:<host>:<port>, IPv4:<host>:<port>  TCP over IPv4; the host ends at the
//	                                      first ':' and is an IPv4 literal or
//	                                      a name resolved once (first IPv4
//	                                      address); <port> is decimal 0..65535
//	                                      (leading blanks and '+' allowed, as
//	                                      strtoul(3) does)
//	IPv6:[<addr>]:<port>                  extension: TCP over IPv6, <addr> an
//	                                      IPv6 literal or a name
//	UNIX:<path>                           unix stream socket, path < 108 bytes
//
// IP:<port>, IP::<port> (and IPv6:<port>) are listen-only and rejected.
// FD: addresses parse in libnal but are rejected here: a client context
// opens and closes its own connections, which pre-opened descriptors cannot
// provide.
func ParseTarget(target string) error {
	_, err := parseTarget(context.Background(), target)
	return err
}

func parseTarget(ctx context.Context, s string) (target, error) {
	t, err := parseTargetSyntax(ctx, s, resolve)
	if err != nil {
		return target{}, &OpError{Op: "parse", Addr: s, Err: err}
	}
	return t, nil
}

// resolver turns a host into one address of a family ("ip4" or "ip6").
type resolver func(ctx context.Context, host, network string) (netip.Addr, error)

func parseTargetSyntax(ctx context.Context, s string, res resolver) (target, error) {
	if len(s) < 2 || len(s) > maxTargetLen {
		return target{}, errTargetSyntax
	}
	switch {
	case strings.HasPrefix(s, "IP:"):
		return parseIPv4Target(ctx, s[len("IP:"):], res)
	case strings.HasPrefix(s, "IPv4:"):
		return parseIPv4Target(ctx, s[len("IPv4:"):], res)
	case strings.HasPrefix(s, "IPv6:"):
		return parseIPv6Target(ctx, s[len("IPv6:"):], res)
	case strings.HasPrefix(s, "UNIX:"):
		p := s[len("UNIX:"):]
		if len(p) >= unixPathMax || strings.IndexByte(p, 0) >= 0 {
			return target{}, errTargetSyntax
		}
		return target{network: "unix", addr: p}, nil
	case strings.HasPrefix(s, "FD:"):
		return target{}, errTargetFD
	}
	return target{}, errTargetSyntax
}

func parseIPv4Target(ctx context.Context, rest string, res resolver) (target, error) {
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		if _, ok := parsePort(rest); ok {
			return target{}, errTargetListenOnly
		}
		return target{}, errTargetSyntax
	}
	port, ok := parsePort(rest[i+1:])
	if !ok {
		return target{}, errTargetSyntax
	}
	if i == 0 {
		return target{}, errTargetListenOnly
	}
	ip, err := res(ctx, rest[:i], "ip4")
	if err != nil {
		return target{}, err
	}
	return target{network: "tcp4", addr: netip.AddrPortFrom(ip, port).String()}, nil
}

func parseIPv6Target(ctx context.Context, rest string, res resolver) (target, error) {
	if !strings.HasPrefix(rest, "[") {
		if _, ok := parsePort(strings.TrimPrefix(rest, ":")); ok {
			return target{}, errTargetListenOnly
		}
		return target{}, errTargetSyntax
	}
	end := strings.IndexByte(rest, ']')
	if end < 2 || len(rest) < end+2 || rest[end+1] != ':' {
		return target{}, errTargetSyntax
	}
	port, ok := parsePort(rest[end+2:])
	if !ok {
		return target{}, errTargetSyntax
	}
	host := rest[1:end]
	if i := strings.IndexByte(host, '%'); i >= 0 && !validZone(host[i+1:]) {
		return target{}, errTargetSyntax
	}
	ip, err := res(ctx, host, "ip6")
	if err != nil {
		return target{}, err
	}
	return target{network: "tcp6", addr: netip.AddrPortFrom(ip, port).String()}, nil
}

// resolve turns a literal or a host name into one address of the family
// (network "ip4" or "ip6").
func resolve(ctx context.Context, host, network string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if (network == "ip4") != ip.Is4() {
			return netip.Addr{}, errTargetSyntax
		}
		return ip, nil
	}
	if strings.ContainsAny(host, "%[]") {
		return netip.Addr{}, errTargetSyntax
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if (network == "ip4") == ip.Is4() {
			return ip, nil
		}
	}
	return netip.Addr{}, errors.New("no " + network + " address for " + host)
}

// parsePort accepts what strtoul(s, &end, 10) accepts with *end == '\0' and
// a result <= 65535: optional C white space, an optional '+', digits.
func parsePort(s string) (uint16, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	s = strings.TrimPrefix(s, "+")
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(v), true
}

// validZone accepts interface names: letters, digits, '.', '_', '-'.
func validZone(z string) bool {
	if z == "" {
		return false
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
