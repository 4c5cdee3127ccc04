// SPDX-License-Identifier: Apache-2.0

package client

import (
	"context"
	"time"

	"github.com/distcache-go/distcache/goimpl/client/dcctx"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Options bounds every operation in time. A nil *Options or a zero field
// means: the environment variable's value if it is set and valid, else the
// default (see goimpl/client/dcctx.Options: DISTCACHE_TIMEOUT_MS,
// DISTCACHE_CONNECT_TIMEOUT_MS, DISTCACHE_IO_TIMEOUT_MS,
// DISTCACHE_DEFAULT_LIFETIME). By default an operation's bound adapts to
// the server's latency between 100 ms and 2 s, and after a timeout
// operations fail at once (ErrStalled) until the server answers a probe.
type Options struct {
	Timeout         time.Duration // the floor of the adaptive bound (100 ms)
	ConnectTimeout  time.Duration // a fixed bound on each connection attempt
	IOTimeout       time.Duration // a fixed bound on one request/response exchange
	DefaultLifetime time.Duration // the lifetime Add sends for 0
}

// Client is a persistent, pooled, concurrency-safe connection to a
// distcache server (or dc_client proxy) over Go's net package. Every
// method is bounded by the Options timeouts and by ctx (deadline or
// cancellation, whichever comes first). A connection that died is dialled
// again once, transparently.
type Client struct {
	c *dcctx.Ctx
}

// Dial connects to addr (the address grammar of goimpl/nal, see
// nal.ParseTarget; a host name is resolved now) and fails if the first
// connection cannot be made within ctx and Options.ConnectTimeout.
func Dial(ctx context.Context, addr string, opt *Options) (*Client, error) {
	var o dcctx.Options
	if opt != nil {
		o = dcctx.Options{Timeout: opt.Timeout, ConnectTimeout: opt.ConnectTimeout, IOTimeout: opt.IOTimeout, DefaultLifetime: opt.DefaultLifetime}
	}
	o.Transport = dcctx.TransportNet
	c, err := dcctx.NewContext(ctx, addr, dcctx.FlagPersistent|dcctx.FlagRetry, &o)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// Add stores data under id for lifetime (0 or less: Options.DefaultLifetime;
// rounded down to milliseconds; over 7 days the server refuses it). A
// refusal by the server is a *ResultError (e.g. 0x65 when a live session
// with that id exists).
func (c *Client) Add(ctx context.Context, id, data []byte, lifetime time.Duration) error {
	if lifetime <= 0 {
		lifetime = c.c.Options().DefaultLifetime
	}
	ms := lifetime.Milliseconds()
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return c.result(ctx, proto.OpAdd, id, data, uint32(ms))
}

// Get returns a copy of the session stored under id, or ErrNotFound. A
// 1-byte answer is a result code (0x01 miss), so sessions of one byte
// cannot be read back.
func (c *Client) Get(ctx context.Context, id []byte) ([]byte, error) {
	var out []byte
	var rerr error
	err := c.c.Do(ctx, proto.OpGet, id, nil, 0, func(p []byte) {
		if len(p) == 1 {
			rerr = resultErr(proto.OpGet, p[0])
			return
		}
		out = append([]byte(nil), p...)
	})
	if err != nil {
		return nil, err
	}
	return out, rerr
}

// Remove deletes the session stored under id; ErrNotFound if there was none.
func (c *Client) Remove(ctx context.Context, id []byte) error {
	return c.result(ctx, proto.OpRemove, id, nil, 0)
}

// Has reports whether a live session is stored under id.
func (c *Client) Has(ctx context.Context, id []byte) (bool, error) {
	err := c.result(ctx, proto.OpHave, id, nil, 0)
	if err == nil {
		return true, nil
	}
	if err == ErrNotFound {
		return false, nil
	}
	return false, err
}

// Close closes the idle connections; later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.c.Close()
	return nil
}

// result runs a request answered by one result byte: nil for 0x00, else a
// *ResultError (or ErrBadResponse for a longer answer).
func (c *Client) result(ctx context.Context, op proto.Op, id, data []byte, ms uint32) error {
	var rerr error
	err := c.c.Do(ctx, op, id, data, ms, func(p []byte) {
		switch {
		case len(p) != 1:
			rerr = ErrBadResponse
		case p[0] != proto.ResultOK:
			rerr = resultErr(op, p[0])
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// resultErr maps a negative result byte to an error: ErrNotFound for 0x01,
// else a *ResultError.
func resultErr(op proto.Op, code byte) error {
	if code == proto.ResultNotOK && op != proto.OpAdd {
		return ErrNotFound
	}
	return &ResultError{Op: op, Code: code}
}
