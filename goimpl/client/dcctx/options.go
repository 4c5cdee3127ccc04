// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"os"
	"strconv"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout         = 100 * time.Millisecond
	DefaultDefaultLifetime = 300 * time.Second
)

// MaxTimeoutFactor: the adaptive bound of an operation goes up to this
// many Options.Timeout (2 s by default).
const MaxTimeoutFactor = 20

// Environment variables that replace the defaults (not explicit Options
// fields). Values are positive decimal integers; anything else is ignored.
const (
	EnvTimeout         = "DISTCACHE_TIMEOUT_MS"         // milliseconds
	EnvConnectTimeout  = "DISTCACHE_CONNECT_TIMEOUT_MS" // milliseconds
	EnvIOTimeout       = "DISTCACHE_IO_TIMEOUT_MS"      // milliseconds
	EnvDefaultLifetime = "DISTCACHE_DEFAULT_LIFETIME"   // seconds
)

// Options bounds every operation in time. A nil *Options or a zero field
// means: the environment variable's value if it is set and valid, else the
// default.
//
//   - Timeout is the floor of the bound on one operation, its connect
//     included (DefaultTimeout, 100 ms; env DISTCACHE_TIMEOUT_MS). The
//     bound in force adapts to the server (goimpl/latency): ten times the
//     slowest answer of the last 5 to 10 s, at least Timeout, at most
//     MaxTimeoutFactor Timeouts (2 s); at least 10 Timeouts (1 s) while
//     the answers say little (latency.Bound.Known): before the first,
//     and until they have come for 5 s (again after 10 s without one).
//     An exchange whose wait ended over a quarter of the bound late
//     (this process did not get the CPU) waits up to two bounds more. A timeout puts the Ctx on probation (see Ctx).
//   - ConnectTimeout and IOTimeout replace the adaptive bound by fixed
//     ones, as in earlier versions (no default; env
//     DISTCACHE_CONNECT_TIMEOUT_MS, DISTCACHE_IO_TIMEOUT_MS): IOTimeout
//     bounds one request/response exchange, from the write of the request
//     to the last byte of the response, and ConnectTimeout is added to the
//     bound of an exchange on a new connection. Either may be given alone
//     (the other part then follows the adaptive bound, the connect
//     counting within it).
//   - DefaultLifetime is the session lifetime sent when AddSession is given
//     a timeout under 1000 ms (DefaultDefaultLifetime, env
//     DISTCACHE_DEFAULT_LIFETIME in seconds). httpd 2.4 passes only the
//     0..999 ms remainder of the real lifetime, so such values carry no
//     information; Apache's default SSLSessionCacheTimeout is 300 s.
//
// An operation therefore fails within about its bound (twice that when
// FlagRetry reconnects after a dead connection), never blocking for the
// kernel's connect timeout, and while the Ctx is on probation at once.
//
// Transport selects the connections' implementation (TransportCaller, the
// default, or TransportNet); the semantics do not depend on it.
//
// ConnPerOp makes a context without FlagPersistent open and close a
// connection for every operation, as the original did, instead of keeping
// its idle connection (a load generator that measures the accept path
// wants it; see Ctx).
//
// RawWait, when set, is asked at the start of each exchange of a
// TransportCaller link; when it says yes, the exchange's system calls are
// made in the selector's raw mode (nal.Selector.SetRaw): the goroutine
// keeps its P while it waits for the answer, for 200 us at most (a later
// answer is waited for as an ordinary system call). The C library says yes while
// its caller is the only thread in the engine (internal/procs), so that
// the Go runtime has no P to take back and hand over during the wait.
//
// Logf, when set, gets one line when the Ctx goes on probation and one
// when it comes off it, at most one probation a second (the C library
// prints them on stderr: Apache's error log).
type Options struct {
	Timeout         time.Duration
	ConnectTimeout  time.Duration
	IOTimeout       time.Duration
	DefaultLifetime time.Duration
	Transport       Transport
	ConnPerOp       bool
	RawWait         func() bool
	Logf            func(format string, args ...any)
}

// defaultTransport is what TransportDefault means (the tests switch it to
// run every semantic test over both transports).
var defaultTransport = TransportCaller

// defaultRawWait is what a nil Options.RawWait means (the tests set it to
// run every semantic test with raw waits too).
var defaultRawWait func() bool

// resolved fills zero fields from the environment or the defaults.
func (o *Options) resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Transport == TransportDefault {
		r.Transport = defaultTransport
	}
	if r.RawWait == nil {
		r.RawWait = defaultRawWait
	}
	if r.Timeout <= 0 {
		r.Timeout = envDuration(EnvTimeout, time.Millisecond, DefaultTimeout)
	}
	if r.ConnectTimeout <= 0 {
		r.ConnectTimeout = envDuration(EnvConnectTimeout, time.Millisecond, 0)
	}
	if r.IOTimeout <= 0 {
		r.IOTimeout = envDuration(EnvIOTimeout, time.Millisecond, 0)
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
