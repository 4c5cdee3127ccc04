// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"time"
)

// Handing connections over. The C library's front (capi/front/dc_client.c)
// performs an operation on an established plain connection itself, in C,
// because entering the Go runtime costs an Apache child more than the
// exchange does; the Ctx stays the one owner of the rest of the semantics
// and of every connection it makes. After an operation the front asks for
// one idle connection (Handoff) and from then on owns that socket: it
// applies the same checks (a kept connection of a context without
// FlagPersistent is looked at before reuse), the same bound, and on a
// failure closes it and tells the Ctx what happened (Failed), or resends
// the request through Resent when the Ctx would have resent it.

// Handoff is what the front gets with a connection.
type Handoff struct {
	FD       int           // a connected socket the caller now owns, or -1
	Bound    time.Duration // the bound of one exchange now (Options.Timeout, adapted)
	Lifetime time.Duration // Options.DefaultLifetime
	// Floor and Ceil: the bound adapts between them to the answers the
	// caller sees (goimpl/latency's rule); equal when it is fixed
	// (Options.IOTimeout).
	Floor, Ceil time.Duration
}

// Handoff gives up the socket of one idle connection (the most recently
// used) to the caller, who closes it; FD is -1 when none is idle (or it
// cannot be handed over: a connection of TransportNet), the Ctx is
// closed or on probation.
func (c *Ctx) Handoff() Handoff {
	h := Handoff{FD: -1}
	if c == nil || c.closed.Load() || c.stalled.Load() {
		return h
	}
	h.Lifetime = c.opt.DefaultLifetime
	h.Bound = c.bound(time.Now())
	h.Floor, h.Ceil = c.lat.Floor(), c.lat.Ceil()
	if c.opt.IOTimeout > 0 {
		h.Floor, h.Ceil = c.opt.IOTimeout, c.opt.IOTimeout
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.idle)
	if n == 0 {
		return h
	}
	l := c.idle[n-1]
	if h.FD = l.detach(); h.FD < 0 {
		return h
	}
	c.idle[n-1] = nil
	c.idle = c.idle[:n-1]
	if len(c.spare) < MaxIdle {
		c.spare = append(c.spare, l) // detached: as after reset
	} else {
		l.destroy()
	}
	return h
}

// Drops counts how often the Ctx dropped its idle connections (after a
// network failure: they lead to the same, probably restarted, server) or
// went on probation; a holder of handed-over connections that sees it
// change across an operation closes them too.
func (c *Ctx) Drops() uint32 { return c.drops.Load() }

// Failed records an operation that failed on a handed-over connection
// after its request was written, when the Ctx would not resend it: the
// reget state is cleared (E-14); a timeout (the connection stayed silent
// for bound t) puts the Ctx on probation, another failure drops the idle
// connections, as the Ctx does after its own exchanges.
func (c *Ctx) Failed(timedOut bool, t time.Duration) {
	c.clearReget()
	if timedOut {
		c.stall(t, nil)
	} else {
		c.dropIdle()
	}
}

// Resent runs an operation whose request the front wrote on a handed-over
// connection that died before the answer began, when the Ctx would send
// it again (a context without FlagPersistent, or with FlagRetry): the
// idle connections are dropped and the request goes out once more on a
// new connection, not again after that.
func (c *Ctx) Resent() Resent { return Resent{c} }

// Resent is a Ctx whose operations are that one resend.
type Resent struct{ c *Ctx }

// AddSession is Ctx.AddSession, resent.
func (r Resent) AddSession(id, data []byte, timeoutMS uint64) bool {
	return r.c.addSession(id, data, timeoutMS, true)
}

// RemoveSession is Ctx.RemoveSession, resent.
func (r Resent) RemoveSession(id []byte) bool { return r.c.removeSession(id, true) }

// GetSession is Ctx.GetSession, resent.
func (r Resent) GetSession(id, dst []byte) (int, bool) { return r.c.getSession(id, dst, true) }

// HasSession is Ctx.HasSession, resent.
func (r Resent) HasSession(id []byte) int { return r.c.hasSession(id, true) }
