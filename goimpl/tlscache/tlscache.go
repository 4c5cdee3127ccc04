// SPDX-License-Identifier: Apache-2.0

// Package tlscache lets Go TLS servers share their sessions through a
// distcache store, so that a farm of Go HTTPS servers behind a load balancer
// resumes sessions across instances without sharing ticket keys.
//
// It fills a *tls.Config's WrapSession and UnwrapSession: the ticket a
// client receives is a random 32-byte handle (never the session state,
// which holds the master secret); the state is kept in the store for the
// session's lifetime. A miss, a timeout or a store error means a full
// handshake, never a failed one.
//
// In single-use mode every session is taken (read and deleted in one atomic
// step) when it is resumed, so a ticket resumes at most once across the
// whole farm: the anti-replay RFC 8446 §8.1 asks of a server that accepts
// 0-RTT. Outside single-use mode sessions are marked not usable for early
// data, since a stored session could then be replayed.
package tlscache

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"sync"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// IDLen is the length of the handle a client receives as its ticket.
const IDLen = 32

// Defaults of Options.
const (
	DefaultLifetime = 5 * time.Minute
	DefaultTimeout  = 100 * time.Millisecond
	// MaxLifetime is distcache's longest session lifetime (7 days), which
	// is also TLS 1.3's longest ticket lifetime.
	MaxLifetime = proto.MaxExpiry * time.Millisecond
)

// Options tune Configure. The zero value is usable.
type Options struct {
	// Lifetime is how long a session is kept (default 5 minutes, at most
	// 7 days).
	Lifetime time.Duration
	// Timeout bounds every store call made inside a handshake (default
	// 100 ms). When it runs out the handshake goes on as a full one.
	Timeout time.Duration
	// SingleUse makes each session resumable at most once across every
	// server sharing the store (the store must support Take atomically;
	// when it does not, no session resumes). Sessions stored in this mode
	// keep their EarlyData flag, so a QUIC server may accept 0-RTT.
	SingleUse bool
	// OnError, when set, is told of store failures other than a miss (the
	// handshake carries on as a full one). It must not block.
	OnError func(op string, err error)
}

// Configure makes cfg keep its server sessions in s. It replaces
// cfg.WrapSession and cfg.UnwrapSession; in single-use mode it also wraps
// cfg.GetConfigForClient, so that a handle presented twice in one handshake
// is taken once. Session tickets must not be disabled in cfg.
func Configure(cfg *tls.Config, s store.Store, opt *Options) {
	c := newCache(s, opt)
	cfg.WrapSession = c.wrap
	cfg.UnwrapSession = c.unwrap
	if !c.opt.SingleUse {
		return
	}
	inner := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		from := cfg
		if inner != nil {
			got, err := inner(hello)
			if err != nil {
				return nil, err
			}
			if got != nil {
				from = got
			}
		}
		per := from.Clone()
		h := &handshake{c: c}
		per.WrapSession = c.wrap
		per.UnwrapSession = h.unwrap
		per.GetConfigForClient = nil
		return per, nil
	}
}

type cache struct {
	s   store.Store
	opt Options
	buf sync.Pool // *[]byte of proto.MaxDataLen capacity
}

func newCache(s store.Store, opt *Options) *cache {
	c := &cache{s: s}
	if opt != nil {
		c.opt = *opt
	}
	if c.opt.Lifetime <= 0 {
		c.opt.Lifetime = DefaultLifetime
	}
	if c.opt.Lifetime > MaxLifetime {
		c.opt.Lifetime = MaxLifetime
	}
	if c.opt.Timeout <= 0 {
		c.opt.Timeout = DefaultTimeout
	}
	c.buf.New = func() any { b := make([]byte, 0, proto.MaxDataLen); return &b }
	return c
}

func (c *cache) fail(op string, err error) {
	if c.opt.OnError != nil {
		c.opt.OnError(op, err)
	}
}

// ErrTooLarge is reported (through OnError) for a session whose state does
// not fit in a distcache entry; the client gets a handle that will miss.
var ErrTooLarge = errors.New("tlscache: session state larger than a distcache entry")

// wrap stores the session under a fresh random handle. Whatever happens,
// it returns a handle and no error: an error here would end the
// connection, and a handle that is not stored is merely a later miss.
func (c *cache) wrap(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	id := make([]byte, IDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, err // the system's randomness failed: nothing is safe
	}
	if !c.opt.SingleUse {
		ss.EarlyData = false
	}
	state, err := ss.Bytes()
	if err != nil {
		c.fail("wrap", err)
		return id, nil
	}
	if len(state) > proto.MaxPayload-8-IDLen {
		c.fail("add", ErrTooLarge)
		return id, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.Timeout)
	defer cancel()
	if err := c.s.Add(ctx, id, state, c.opt.Lifetime); err != nil {
		c.fail("add", err)
	}
	return id, nil
}

// unwrap looks the handle up: (nil, nil), a full handshake, unless a
// stored state parses.
func (c *cache) unwrap(identity []byte, _ tls.ConnectionState) (*tls.SessionState, error) {
	if len(identity) != IDLen {
		return nil, nil // not one of ours (another farm's ticket, garbage)
	}
	bp := c.buf.Get().(*[]byte)
	defer c.buf.Put(bp)
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.Timeout)
	defer cancel()
	var (
		data []byte
		err  error
		op   = "get"
	)
	if c.opt.SingleUse {
		op = "take"
		data, err = c.s.Take(ctx, identity, (*bp)[:0])
	} else {
		data, err = c.s.Get(ctx, identity, (*bp)[:0])
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.fail(op, err)
		}
		return nil, nil
	}
	ss, err := tls.ParseSessionState(data)
	if err != nil {
		c.fail("parse", err)
		return nil, nil
	}
	return ss, nil
}

// handshake remembers, within one handshake, what each handle taken from
// the store resolved to: crypto/tls may present the same identity more
// than once, and a second Take would miss.
type handshake struct {
	c    *cache
	mu   sync.Mutex
	seen map[string]*tls.SessionState
}

func (h *handshake) unwrap(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ss, ok := h.seen[string(identity)]; ok {
		return ss, nil
	}
	ss, err := h.c.unwrap(identity, cs)
	if err != nil {
		return nil, err
	}
	if h.seen == nil {
		h.seen = make(map[string]*tls.SessionState, 1)
	}
	h.seen[string(identity)] = ss
	return ss, nil
}
