// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Call is one request started on an Async store without waiting for its
// result: an event loop that serves many connections starts it and goes
// back to its sockets, and the result comes to Done.
type Call struct {
	Op   proto.Op // OpAdd, OpGet, OpRemove, OpHave, or OpGetLife
	ID   []byte
	Data []byte        // OpAdd's
	TTL  time.Duration // OpAdd's
	// Dst is where OpGet's data is appended; on completion Res is Dst
	// with the data (or Dst itself on an error) and Err the result, as
	// the blocking method would have returned them.
	Dst []byte
	Res []byte
	Err error
	// Left is OpGetLife's: the remaining lifetime of the entry found
	// (0 when the store cannot tell), as GetLife returns it.
	Left time.Duration
	// Done is told once that the call is complete, from any goroutine,
	// maybe before Start returns. A wrapper may put its own Completion
	// here for the call's time and give the call back to the one it
	// replaced when it completes.
	Done Completion
	// Batch, set by a caller that starts calls in rounds (an event loop
	// serving the requests of one wake-up), lets the store leave work
	// to the end of the caller's round: Batch(f) has f called once on
	// the caller's goroutine once it has started the round's calls,
	// before it waits again. Upstream so writes the requests one round
	// starts on a server connection in one write. Nil: the store does
	// its work in Start.
	Batch func(f func())
}

// A Completion is told that a Call has completed.
type Completion interface{ Complete(c *Call) }

// Async is a Store that can start a call without waiting for its result.
// Start returns false, having done nothing, when it cannot (the caller
// then uses the blocking method); otherwise c.Done is told once. The ids
// and data are the Store's to read only until Start returns.
type Async interface {
	Start(c *Call) bool
}

// How Handler.Start dealt with a request.
type Started uint8

const (
	// Answered: the answer (or the error closing the connection) is
	// returned at once; no store was asked.
	Answered Started = iota
	// Pending: the store was asked; Finish makes the answer once the
	// Call's Done is told.
	Pending
	// Blocking: the store cannot start it; Handle must answer it (from
	// a goroutine that may wait).
	Blocking
)

// Start is Handle for an event loop: requests answered without the store
// are answered at once, the others started on an Async Store with c (its
// Done set by the caller), so that no call waits. Feature probes and TAKE
// are left to Handle (Blocking): Features may ask the server.
func (h *Handler) Start(req *proto.Message, out []byte, c *Call) ([]byte, Started, error) {
	a, ok := h.Store.(Async)
	if !ok || req.Response {
		return nil, Blocking, nil
	}
	out = out[:0]
	c.Dst, c.Res, c.Err, c.Data, c.TTL, c.Left = out, nil, nil, nil, 0, 0
	switch req.Op {
	case proto.OpAdd:
		add, code, ok := proto.ParseAddRequest(req.Payload)
		if !ok {
			return nil, Answered, ErrShortAdd
		}
		if code != proto.ResultOK {
			return append(out, code), Answered, nil
		}
		if proto.IsReservedID(add.ID) {
			return append(out, proto.AddErrIDRange), Answered, nil
		}
		c.ID, c.Data, c.TTL = add.ID, add.Data, time.Duration(add.TimeoutMS)*time.Millisecond
		if add.TimeoutMS < 1000 && h.MinLifetime > 0 {
			c.TTL = h.MinLifetime
		}
	case proto.OpGet, proto.OpRemove, proto.OpHave:
		if !ValidID(req.Payload) {
			return append(out, proto.ResultNotOK), Answered, nil
		}
		if req.Op == proto.OpGet && proto.IsFeaturesID(req.Payload) {
			return nil, Blocking, nil
		}
		if req.Op == proto.OpGet && proto.IsNearMapID(req.Payload) {
			return append(out, proto.ResultNotOK), Answered, nil // no map here
		}
		c.ID = req.Payload
	default:
		return nil, Blocking, nil // TAKE, and what Handle closes for
	}
	c.Op = req.Op
	if !a.Start(c) {
		return nil, Blocking, nil
	}
	return nil, Pending, nil
}

// Finish is the answer to a Call Start started and whose Done was told,
// appended to out[:0] (out may be the Call's Dst); an error as Handle's.
func (h *Handler) Finish(c *Call, out []byte) ([]byte, error) {
	err := c.Err
	switch c.Op {
	case proto.OpAdd:
		return h.addAnswer(c.Op, err, out), nil
	case proto.OpGet:
		return h.getAnswer(c.Op, c.Res, err, out)
	}
	return h.boolAnswer(c.Op, err, out), nil
}

// addAnswer is the answer to an ADD the Store returned err to.
func (h *Handler) addAnswer(op proto.Op, err error, out []byte) []byte {
	switch {
	case err == nil:
		return append(out[:0], proto.ResultOK)
	case errors.Is(err, ErrDuplicate), errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound):
		return append(out[:0], proto.AddErrMatching)
	}
	return h.unavailable(op, err, out)
}

// getAnswer is the answer to a GET or TAKE the Store returned d, err to.
func (h *Handler) getAnswer(op proto.Op, d []byte, err error, out []byte) ([]byte, error) {
	switch {
	case err == nil && len(d) > proto.MaxPayload:
		return nil, ErrOversizeGet
	case err == nil && len(d) > 0:
		return d, nil
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid):
		// Empty data reads as a miss, as in the original.
		return append(out[:0], proto.ResultNotOK), nil
	}
	return h.unavailable(op, err, out), nil
}

// lifeAnswer is the answer to a GETLIFE of id: the remaining lifetime
// and the data (proto.PutLife), 0x01 for a miss, ResultTooLarge when the
// two do not fit one message.
func (h *Handler) lifeAnswer(ctx context.Context, id, out []byte) []byte {
	out = append(out[:0], make([]byte, proto.LifeSize)...)
	d, left, err := GetLife(ctx, h.Store, id, out)
	switch {
	case err == nil && len(d) == proto.LifeSize, errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid):
		return append(d[:0], proto.ResultNotOK)
	case err != nil:
		return h.unavailable(proto.OpGet, err, d)
	case len(d)-proto.LifeSize > proto.MaxLifeData:
		return append(d[:0], proto.ResultTooLarge)
	}
	proto.PutLife(d, left)
	return d
}

// boolAnswer is the answer to a REMOVE or HAVE the Store returned err to.
func (h *Handler) boolAnswer(op proto.Op, err error, out []byte) []byte {
	switch {
	case err == nil:
		return append(out[:0], proto.ResultOK)
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid):
		return append(out[:0], proto.ResultNotOK)
	}
	return h.unavailable(op, err, out)
}

// CanStart reports whether Start can start calls on s: s is Async, and
// so is every store it wraps (an Unwrap method), since a wrapper's Start
// passes the call on.
func CanStart(s Store) bool {
	for {
		if _, ok := s.(Async); !ok {
			return false
		}
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			return true
		}
		s = u.Unwrap()
	}
}

// CanStart reports whether Start can start calls on the Handler's Store.
func (h *Handler) CanStart() bool { return CanStart(h.Store) }
