package client

import (
	"context"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Client is the idiomatic Go API: a persistent, pooled, concurrency-safe
// connection to a distcache server (or dc_client proxy), built on Ctx with
// FlagPersistent|FlagRetry. Every method is bounded by the Options
// timeouts and by ctx (deadline or cancellation, whichever comes first).
type Client struct {
	c *Ctx
}

// Dial connects to addr (the address grammar of goimpl/nal, see nal.ParseTarget) and
// fails if the first connection cannot be made.
func Dial(addr string, opt *Options) (*Client, error) {
	c, err := New(addr, FlagPersistent|FlagRetry, opt)
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
	if len(id) < 1 || len(data) < 1 || proto.AddRequestSize(len(id), len(data)) > proto.MaxPayload {
		return ErrInvalid
	}
	if lifetime <= 0 {
		lifetime = c.c.opt.DefaultLifetime
	}
	ms := lifetime.Milliseconds()
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return c.result(ctx, &request{op: proto.OpAdd, id: id, data: data, timeoutMS: uint32(ms)})
}

// Get returns a copy of the session stored under id, or ErrNotFound. A
// 1-byte answer is a result code (0x01 miss), so sessions of one byte
// cannot be read back.
func (c *Client) Get(ctx context.Context, id []byte) ([]byte, error) {
	if !validID(id) {
		return nil, ErrInvalid
	}
	var out []byte
	var rerr error
	err := c.c.roundTrip(ctx, &request{op: proto.OpGet, id: id}, func(p []byte) {
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
	if !validID(id) {
		return ErrInvalid
	}
	return c.result(ctx, &request{op: proto.OpRemove, id: id})
}

// Has reports whether a live session is stored under id.
func (c *Client) Has(ctx context.Context, id []byte) (bool, error) {
	if !validID(id) {
		return false, ErrInvalid
	}
	err := c.result(ctx, &request{op: proto.OpHave, id: id})
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
func (c *Client) result(ctx context.Context, rq *request) error {
	var rerr error
	err := c.c.roundTrip(ctx, rq, func(p []byte) {
		switch {
		case len(p) != 1:
			rerr = &OpError{Op: rq.op.String(), Addr: c.c.addr, Err: ErrBadResponse}
		case p[0] != proto.ResultOK:
			rerr = resultErr(rq.op, p[0])
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
