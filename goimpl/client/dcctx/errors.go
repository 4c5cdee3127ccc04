// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"errors"
)

// Sentinel errors, for errors.Is.
var (
	// ErrClosed: the Ctx or Client was closed.
	ErrClosed = errors.New("distcache: client closed")
	// ErrInvalid: an argument is out of range (empty id or data, message
	// over 32768 bytes); nothing was sent.
	ErrInvalid = errors.New("distcache: invalid argument")
	// ErrUnavailable: the peer (a dc_client proxy) has no server: it
	// answered with an empty payload or DC_ERR_DISCONNECTED (0x02).
	ErrUnavailable = errors.New("distcache: server unavailable")
	// ErrBadResponse: the response's uid or operation does not match the
	// request, or more bytes followed it; the connection was dropped.
	ErrBadResponse = errors.New("distcache: response does not match the request")
	// ErrStalled: the Ctx is on probation (its server let an operation
	// time out and has not answered a probe since); nothing was sent.
	ErrStalled = errors.New("distcache: server stalled, on probation")
)

// OpError is the error type of this package: what was attempted (Op:
// "parse", "dial", "ADD", "GET", ...), on which address, and why.
type OpError struct {
	Op   string
	Addr string
	Err  error
}

func (e *OpError) Error() string {
	return "distcache " + e.Op + " " + e.Addr + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }
