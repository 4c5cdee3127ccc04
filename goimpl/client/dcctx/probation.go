// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/distcache-go/distcache/goimpl/latency"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Probation. An operation that times out (the server accepted, or the
// connect is under way, but nothing came back within the bound) puts the
// Ctx on probation: until the server answers a probe, every operation
// fails at once without I/O (ErrStalled: GetSession a miss, AddSession
// false), so a stalled cache costs one operation its bound, not every
// operation. A goroutine probes in the background: it connects anew and
// asks one HAVE, waiting up to the ceiling of the bound for the answer,
// and again on a new connection (at most one a second) until one comes.
// The answer ends the probation, and the probe's connection joins the
// pool. A server that refuses connections or closes them is not on
// probation (those operations fail fast on their own), but one already on
// probation stays there until it answers.

// probeID is the session id the probe asks HAVE of; any answer will do.
var probeID = []byte("distcache probe")

// probeEvery: probe connections start at least this far apart.
const probeEvery = time.Second

// budget is the time one exchange may take: until deadline, which extend
// moves on by t when the wait ended late (this process did not get the
// CPU), up to latency.MaxExtensions times.
type budget struct {
	deadline time.Time
	t        time.Duration
	ext      int
	raw      bool // wait in the selector's raw mode (Options.RawWait)
}

// extend is called at now, past the deadline: it gives the exchange
// another t when the wait that ended the budget ended late.
func (b *budget) extend(now time.Time) bool {
	if b.ext >= latency.MaxExtensions || !latency.Late(b.deadline, now, b.t) {
		return false
	}
	b.ext++
	b.deadline = now.Add(b.t)
	return true
}

// bound returns the bound of an exchange starting at now: IOTimeout when
// it is set, else the adaptive one; but at least as if an answer had taken
// Timeout (10 Timeouts, 1 s) while the answers do not yet say what to
// expect of the server (latency.Bound.Known): before the first, for a
// Window after the first (or the first after two Windows of silence). A
// new context knows nothing of the server, and its first exchange includes
// the connect and the accept (on a loaded machine 2 in 300 new contexts
// waited over 100 ms for it); and one fast answer says little of the
// next (an Apache child forked in a graceful restart, its first answers
// under 10 ms, waited over 100 ms for one a moment later and went on
// probation).
func (c *Ctx) bound(now time.Time) time.Duration {
	if c.opt.IOTimeout > 0 {
		return c.opt.IOTimeout
	}
	t := c.lat.Timeout(now)
	if !c.lat.Known(now) {
		t = max(t, min(latency.Factor*c.opt.Timeout, c.lat.Ceil()))
	}
	return t
}

// connectBound bounds a connect on its own (New's first connection, a
// dial over Go's net package).
func (c *Ctx) connectBound() time.Duration {
	if c.opt.ConnectTimeout > 0 {
		return c.opt.ConnectTimeout
	}
	return c.bound(time.Now())
}

// observe takes the duration of a successful exchange.
func (c *Ctx) observe(start time.Time) {
	if c.opt.IOTimeout <= 0 {
		now := time.Now()
		c.lat.Observe(now.Sub(start), now)
	}
}

// dialFailed handles a failed dial: the idle connections lead to the same
// server, and a dial that timed out (a blocking one, over Go's net
// package) puts the Ctx on probation.
func (c *Ctx) dialFailed(ctx context.Context, err error) {
	c.dropIdle()
	// (not classify: EAGAIN, a full unix backlog, fails at once)
	if ctx.Err() == nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, unix.ETIMEDOUT)) {
		c.stall(c.connectBound(), err)
	}
}

// Stalled reports whether the Ctx is on probation: its server let an
// operation time out and has not answered a probe since.
func (c *Ctx) Stalled() bool { return c.stalled.Load() }

// stall puts the Ctx on probation after an exchange timed out after t
// with error why (nil: not known).
func (c *Ctx) stall(t time.Duration, why error) {
	if c.closed.Load() || !c.stalled.CompareAndSwap(false, true) {
		return
	}
	c.drops.Add(1)
	now := time.Now()
	// at most one line a second: the line that ends a probation is
	// printed when the one that began it was
	logged := c.opt.Logf != nil && now.UnixNano()-c.lastLog.Load() >= int64(time.Second)
	if logged {
		c.lastLog.Store(now.UnixNano())
		var where string
		if se := (*silenceError)(nil); errors.As(why, &se) {
			where = " " + se.where()
		}
		c.opt.Logf("distcache: %s did not answer within %v%s; operations fail at once (a cache miss) until it answers a probe", c.addr, t.Round(time.Millisecond), where)
	}
	go c.probe(now, logged)
}

// probe runs while the Ctx is on probation (see above).
func (c *Ctx) probe(since time.Time, logged bool) {
	wait := MaxTimeoutFactor * c.opt.Timeout
	for !c.closed.Load() {
		start := time.Now()
		if l, err := c.tr.dial(context.Background(), nil); err == nil {
			c.probeMu.Lock()
			c.probeFD = l.fd()
			c.probeMu.Unlock()
			b := budget{deadline: start.Add(wait), t: wait}
			_, xerr := l.exchange(context.Background(), request{op: proto.OpHave, id: probeID}, c.uid.Add(1), b)
			c.probeMu.Lock()
			c.probeFD = -1
			c.probeMu.Unlock()
			if xerr == nil && !c.closed.Load() {
				c.stalled.Store(false)
				if logged {
					c.opt.Logf("distcache: %s answers again (after %v)", c.addr, time.Since(since).Round(time.Millisecond))
				}
				c.release(l, true)
				return
			}
			l.destroy()
		}
		select {
		case <-c.done:
			return
		case <-time.After(time.Until(start.Add(probeEvery))):
		}
	}
}

// stopProbe wakes a probe waiting for its answer (Close): shutting its
// socket down ends the wait at once.
func (c *Ctx) stopProbe() {
	c.probeMu.Lock()
	if c.probeFD >= 0 {
		unix.Shutdown(c.probeFD, unix.SHUT_RDWR)
	}
	c.probeMu.Unlock()
}

// probeFDs appends the probe's socket, if one is open, to fds.
func (c *Ctx) probeFDs(fds []int) []int {
	c.probeMu.Lock()
	if c.probeFD >= 0 {
		fds = append(fds, c.probeFD)
	}
	c.probeMu.Unlock()
	return fds
}
