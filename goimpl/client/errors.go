// SPDX-License-Identifier: Apache-2.0

package client

import (
	"errors"
	"fmt"

	"github.com/distcache-go/distcache/goimpl/client/dcctx"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Sentinel errors, for errors.Is.
var (
	// ErrNotFound: the session is not in the cache (GET/REMOVE answered 0x01).
	ErrNotFound = errors.New("distcache: session not found")
	// ErrClosed: the Client was closed.
	ErrClosed = dcctx.ErrClosed
	// ErrInvalid: an argument is out of range (empty id or data, message
	// over 32768 bytes); nothing was sent.
	ErrInvalid = dcctx.ErrInvalid
	// ErrUnavailable: the peer (a dc_client proxy) has no server: it
	// answered with an empty payload or DC_ERR_DISCONNECTED (0x02).
	ErrUnavailable = dcctx.ErrUnavailable
	// ErrBadResponse: the response's uid or operation does not match the
	// request, or more bytes followed it; the connection was dropped.
	ErrBadResponse = dcctx.ErrBadResponse
	// ErrStalled: the server let an operation time out and has not
	// answered a probe since; nothing was sent.
	ErrStalled = dcctx.ErrStalled
)

// OpError is what was attempted (Op: "parse", "dial", "ADD", "GET", ...),
// on which address, and why. An address the grammar refuses matches
// nal.ErrAddress.
type OpError = dcctx.OpError

// ResultError is a well-formed negative answer: the 1-byte result code the
// server sent (doc/PROTOCOL.md §5).
type ResultError struct {
	Op   proto.Op
	Code byte
}

func (e *ResultError) Error() string {
	return fmt.Sprintf("distcache: %v answered %s", e.Op, proto.ResultName(e.Code))
}

// Is makes DC_ERR_DISCONNECTED match ErrUnavailable and DC_ERR_NOTOK match
// ErrNotFound.
func (e *ResultError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.Code == proto.ResultDisconnected
	case ErrNotFound:
		return e.Code == proto.ResultNotOK
	}
	return false
}
