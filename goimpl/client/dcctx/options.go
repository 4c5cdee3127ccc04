// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"os"
	"strconv"
	"time"
)

// Defaults of Options.
const (
	DefaultConnectTimeout  = 2 * time.Second
	DefaultIOTimeout       = 3 * time.Second
	DefaultDefaultLifetime = 300 * time.Second
)

// Environment variables that replace the defaults (not explicit Options
// fields). Values are positive decimal integers; anything else is ignored.
const (
	EnvConnectTimeout  = "DISTCACHE_CONNECT_TIMEOUT_MS" // milliseconds
	EnvIOTimeout       = "DISTCACHE_IO_TIMEOUT_MS"      // milliseconds
	EnvDefaultLifetime = "DISTCACHE_DEFAULT_LIFETIME"   // seconds
)

// Options bounds every operation in time. A nil *Options or a zero field
// means: the environment variable's value if it is set and valid, else the
// default.
//
//   - ConnectTimeout bounds each connection attempt (DefaultConnectTimeout,
//     env DISTCACHE_CONNECT_TIMEOUT_MS).
//   - IOTimeout bounds one request/response exchange on a connection, from
//     the write of the request to the last byte of the response
//     (DefaultIOTimeout, env DISTCACHE_IO_TIMEOUT_MS).
//   - DefaultLifetime is the session lifetime sent when AddSession is given
//     a timeout under 1000 ms (DefaultDefaultLifetime, env
//     DISTCACHE_DEFAULT_LIFETIME in seconds). httpd 2.4 passes only the
//     0..999 ms remainder of the real lifetime, so such values carry no
//     information; Apache's default SSLSessionCacheTimeout is 300 s.
//
// An operation therefore fails within about ConnectTimeout + IOTimeout
// (twice that when FlagRetry reconnects after a dead connection), never
// blocking for the kernel's connect timeout.
//
// Transport selects the connections' implementation (TransportCaller, the
// default, or TransportNet); the semantics do not depend on it.
//
// ConnPerOp makes a context without FlagPersistent open and close a
// connection for every operation, as the original did, instead of keeping
// its idle connection (a load generator that measures the accept path
// wants it; see Ctx).
type Options struct {
	ConnectTimeout  time.Duration
	IOTimeout       time.Duration
	DefaultLifetime time.Duration
	Transport       Transport
	ConnPerOp       bool
}

// defaultTransport is what TransportDefault means (the tests switch it to
// run every semantic test over both transports).
var defaultTransport = TransportCaller

// resolved fills zero fields from the environment or the defaults.
func (o *Options) resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Transport == TransportDefault {
		r.Transport = defaultTransport
	}
	if r.ConnectTimeout <= 0 {
		r.ConnectTimeout = envDuration(EnvConnectTimeout, time.Millisecond, DefaultConnectTimeout)
	}
	if r.IOTimeout <= 0 {
		r.IOTimeout = envDuration(EnvIOTimeout, time.Millisecond, DefaultIOTimeout)
	}
	if r.DefaultLifetime <= 0 {
		r.DefaultLifetime = envDuration(EnvDefaultLifetime, time.Second, DefaultDefaultLifetime)
	}
	return r
}

func envDuration(name string, unit, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return def
	}
	return time.Duration(v) * unit
}
