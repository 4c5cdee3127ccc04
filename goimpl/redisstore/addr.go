// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Kind is the shape of a Redis deployment.
type Kind int

// The deployments an address can name.
const (
	Standalone Kind = iota // one server (a master, or a proxy in front of several)
	Sentinel               // a master set found through Redis Sentinel
	Cluster                // a Redis Cluster
)

func (k Kind) String() string {
	switch k {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "standalone"
}

// Addr is a parsed Redis address.
type Addr struct {
	Kind     Kind
	TLS      bool     // rediss, rediss-sentinel, rediss-cluster
	Hosts    []string // host:port, at least one; one for Standalone
	Username string   // ACL user, "" for the default user
	DB       int      // database number (Standalone and Sentinel)
	Master   string   // the Sentinel master set name
}

// ErrPasswordInAddr is returned for an address carrying a password:
// command lines can be read by every user of the host.
var ErrPasswordInAddr = errors.New("a password in a Redis address is visible to every user of the host; give it in a file or the environment instead")

// IsAddr reports whether s is meant as a Redis address (by its scheme), so
// a daemon can tell it from a distcache address before parsing.
func IsAddr(s string) bool {
	_, _, ok := scheme(s)
	return ok
}

func scheme(s string) (k Kind, tls, ok bool) {
	i := strings.Index(s, "://")
	if i < 0 {
		return 0, false, false
	}
	switch strings.ToLower(s[:i]) {
	case "redis":
		return Standalone, false, true
	case "rediss":
		return Standalone, true, true
	case "redis-sentinel":
		return Sentinel, false, true
	case "rediss-sentinel":
		return Sentinel, true, true
	case "redis-cluster":
		return Cluster, false, true
	case "rediss-cluster":
		return Cluster, true, true
	}
	return 0, false, false
}

// ParseAddr parses
//
//	redis://[user@]host[:port][/db]
//	rediss://[user@]host[:port][/db]                          (TLS)
//	redis-sentinel://[user@]host[:port][,host[:port]...]/master[?db=N]
//	redis-cluster://[user@]host[:port][,host[:port]...]
//
// and the TLS forms rediss-sentinel:// and rediss-cluster://. The port
// defaults to 6379 (26379 for sentinels); IPv6 hosts go in brackets. For
// Sentinel the hosts are the sentinels and the user is the data servers'.
func ParseAddr(s string) (*Addr, error) {
	k, tls, ok := scheme(s)
	if !ok {
		return nil, fmt.Errorf("redis address %q: the scheme is not redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", s)
	}
	a := &Addr{Kind: k, TLS: tls}
	rest := s[strings.Index(s, "://")+3:]
	var query string
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	var path string
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest, path = rest[:i], rest[i+1:]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		user := rest[:i]
		rest = rest[i+1:]
		if strings.Contains(user, ":") {
			return nil, ErrPasswordInAddr
		}
		a.Username = user
	}
	defPort := "6379"
	if k == Sentinel {
		defPort = "26379"
	}
	if rest == "" {
		return nil, fmt.Errorf("redis address %q: no host", s)
	}
	for _, h := range strings.Split(rest, ",") {
		hp, err := hostPort(h, defPort)
		if err != nil {
			return nil, fmt.Errorf("redis address %q: %v", s, err)
		}
		a.Hosts = append(a.Hosts, hp)
	}
	switch k {
	case Standalone:
		if len(a.Hosts) != 1 {
			return nil, fmt.Errorf("redis address %q: one host only (use redis-sentinel:// or redis-cluster:// for several)", s)
		}
		if path != "" {
			db, err := dbNumber(path)
			if err != nil {
				return nil, fmt.Errorf("redis address %q: %v", s, err)
			}
			a.DB = db
		}
	case Sentinel:
		if path == "" || strings.Contains(path, "/") {
			return nil, fmt.Errorf("redis address %q: give the master set name as the path (redis-sentinel://host:port,.../name)", s)
		}
		a.Master = path
	case Cluster:
		if path != "" {
			return nil, fmt.Errorf("redis address %q: a cluster has no database path", s)
		}
	}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			key, v, _ := strings.Cut(kv, "=")
			if key != "db" || k != Sentinel {
				return nil, fmt.Errorf("redis address %q: unknown parameter %q", s, kv)
			}
			db, err := dbNumber(v)
			if err != nil {
				return nil, fmt.Errorf("redis address %q: %v", s, err)
			}
			a.DB = db
		}
	}
	return a, nil
}

func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	host, port := h, defPort
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", fmt.Errorf("host %q: missing ]", h)
		}
		host = h[1:end]
		switch tail := h[end+1:]; {
		case tail == "":
		case strings.HasPrefix(tail, ":"):
			port = tail[1:]
		default:
			return "", fmt.Errorf("host %q: junk after ]", h)
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if strings.Contains(host, ":") {
			return "", fmt.Errorf("host %q: put an IPv6 address in brackets", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("host %q: empty host name", h)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("host %q: bad port %q", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

func dbNumber(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("bad database number %q", s)
	}
	return int(n), nil
}

// String gives the address back without secrets (there are none in it).
func (a *Addr) String() string {
	sch := map[Kind]string{Standalone: "redis", Sentinel: "redis-sentinel", Cluster: "redis-cluster"}[a.Kind]
	if a.TLS {
		sch = strings.Replace(sch, "redis", "rediss", 1)
	}
	var b strings.Builder
	b.WriteString(sch + "://")
	if a.Username != "" {
		b.WriteString(a.Username + "@")
	}
	b.WriteString(strings.Join(a.Hosts, ","))
	switch {
	case a.Kind == Sentinel:
		b.WriteString("/" + a.Master)
		if a.DB != 0 {
			b.WriteString("?db=" + strconv.Itoa(a.DB))
		}
	case a.Kind == Standalone && a.DB != 0:
		b.WriteString("/" + strconv.Itoa(a.DB))
	}
	return b.String()
}
