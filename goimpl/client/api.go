package client

import (
	"context"
	"errors"
	"time"
)

// DC_CTX flag bits (same values as <distcache/dc_client.h>).
const (
	FlagPersistent = 0x1
	FlagPIDCheck   = 0x2
	FlagRetry      = 0x4
	FlagLate       = 0x8
)

// Options bounds every operation in time. The zero value (or nil) means the
// defaults.
type Options struct {
	ConnectTimeout  time.Duration // default 2s (env DISTCACHE_CONNECT_TIMEOUT_MS overrides)
	IOTimeout       time.Duration // default 3s (env DISTCACHE_IO_TIMEOUT_MS)
	DefaultLifetime time.Duration // default 300s (env DISTCACHE_DEFAULT_LIFETIME, seconds): used when an add's timeout is < 1000 ms
}

// ErrNotFound is returned by Client.Get and Client.Remove on a miss.
var ErrNotFound = errors.New("distcache: session not found")

var errTODO = errors.New("distcache client: not implemented yet (TODO)")

// Ctx has the semantics of DC_CTX.
type Ctx struct{}

// ParseTarget reports whether target is a valid connectable address.
func ParseTarget(target string) error { return errTODO }

// New is DC_CTX_new.
func New(target string, flags uint32, opt *Options) (*Ctx, error) { return nil, errTODO }

// Close is DC_CTX_free.
func (c *Ctx) Close() {}

// AddSession is DC_CTX_add_session.
func (c *Ctx) AddSession(id, data []byte, timeoutMS uint64) bool { return false }

// RemoveSession is DC_CTX_remove_session.
func (c *Ctx) RemoveSession(id []byte) bool { return false }

// GetSession is DC_CTX_get_session.
func (c *Ctx) GetSession(id, dst []byte) (used int, ok bool) { return 0, false }

// RegetSession is DC_CTX_reget_session.
func (c *Ctx) RegetSession(id, dst []byte) (used int, ok bool) { return 0, false }

// HasSession is DC_CTX_has_session.
func (c *Ctx) HasSession(id []byte) int { return -1 }

// Client is the idiomatic Go API.
type Client struct{}

// Dial returns a Client for addr.
func Dial(addr string, opt *Options) (*Client, error) { return nil, errTODO }

// Add stores a session.
func (c *Client) Add(ctx context.Context, id, data []byte, lifetime time.Duration) error {
	return errTODO
}

// Get fetches a session.
func (c *Client) Get(ctx context.Context, id []byte) ([]byte, error) { return nil, errTODO }

// Remove deletes a session.
func (c *Client) Remove(ctx context.Context, id []byte) error { return errTODO }

// Has reports whether a session exists.
func (c *Client) Has(ctx context.Context, id []byte) (bool, error) { return false, errTODO }

// Close closes the client.
func (c *Client) Close() error { return nil }
