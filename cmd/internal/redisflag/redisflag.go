// SPDX-License-Identifier: Apache-2.0

// Package redisflag is the command-line face of goimpl/redisstore that
// dc_server (-backend) and dc_client (-server) share: the -redis* options,
// their usage text, and opening the store they describe.
package redisflag

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/goimpl/redisstore"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
)

// Usage documents the options Config.Option takes, for a tool's -h.
const Usage = `Redis store (an address redis://[user@]host:port/db, rediss://... for TLS,
redis-sentinel://host:port,host:port/master-name, redis-cluster://host:port,...):
   -redistimeout <msecs>  deadline of each Redis operation (default 50); a
                          request that misses it is answered as a miss
   -redisprefix <str>     prefix of every key (default "dc:"; "-" for none)
   -redispassfile <path>  file whose first line is the Redis password
                          (default: $DC_REDIS_PASSWORD; never in the address)
   -sentinelpassfile <path> the sentinels' password
                          (default: $DC_REDIS_SENTINEL_PASSWORD)
   -redistlsca <path>     CA certificates the Redis servers must chain to
                          (rediss; default: the system roots)
   -redistlscert <path>   client certificate for Redis (with -redistlskey)
   -redistlskey <path>    its private key
   -redistlsname <name>   name the servers' certificates must carry
                          (default: the host of each address)
`

// Config holds the -redis* options.
type Config struct {
	Timeout                    time.Duration
	Prefix                     string
	PassFile, SentinelPassFile string
	TLS                        tlsconf.Options
}

// Option consumes the current option of a if it is one of Usage's.
func (c *Config) Option(a *tool.Args) bool {
	switch a.Opt() {
	case "-redistimeout":
		c.Timeout = time.Duration(a.Int(1, 60000)) * time.Millisecond
	case "-redisprefix":
		c.Prefix = a.Value()
	case "-redispassfile":
		c.PassFile = path(a)
	case "-sentinelpassfile":
		c.SentinelPassFile = path(a)
	case "-redistlsca":
		c.TLS.CA = path(a)
	case "-redistlscert":
		c.TLS.Cert = path(a)
	case "-redistlskey":
		c.TLS.Key = path(a)
	case "-redistlsname":
		c.TLS.Name = a.Value()
	default:
		return false
	}
	return true
}

// path consumes a file name, made absolute (also for a -daemon re-exec,
// which changes directory).
func path(a *tool.Args) string {
	v := a.Value()
	if p, err := filepath.Abs(v); err == nil && v != "" {
		v = p
		a.SetValue(v)
	}
	return v
}

// Open opens the store at addr (a Redis address) with these options;
// logf is told when Redis cannot be reached at start (the store keeps
// trying in the background).
func (c *Config) Open(addr string, logf func(string, ...any)) (*redisstore.Store, error) {
	pw, err := redisstore.Password(c.PassFile, redisstore.PasswordEnv)
	if err != nil {
		return nil, fmt.Errorf("-redispassfile: %v", err)
	}
	spw, err := redisstore.Password(c.SentinelPassFile, redisstore.SentinelPasswordEnv)
	if err != nil {
		return nil, fmt.Errorf("-sentinelpassfile: %v", err)
	}
	o := redisstore.Options{Addr: addr, Prefix: c.Prefix, Timeout: c.Timeout,
		Password: pw, SentinelPassword: spw, Logf: logf}
	a, err := redisstore.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if a.TLS {
		// TLS 1.2 too: Redis servers are often configured for it.
		t := c.TLS
		t.AllowTLS12 = true
		tc, err := tlsconf.NewClient(t)
		if err != nil {
			return nil, fmt.Errorf("redis TLS: %v", err)
		}
		o.TLS = tc.Config
	} else if c.TLS != (tlsconf.Options{}) {
		return nil, fmt.Errorf("-redistls* options given for %s, which is not a rediss address", addr)
	}
	return redisstore.Open(o)
}
