// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Handler answers distcache request messages from a Store, byte for byte as
// the original server answers them from its cache: ADD answers 0x00 or one
// of the 0x64..0x68 codes, GET the session's data or 0x01, REMOVE and HAVE
// 0x00 or 0x01. A Handler is safe for concurrent use when its Store is.
type Handler struct {
	Store Store
	// MinLifetime, when positive, is the lifetime of a session added with
	// a timeout under 1000 ms: some clients send only the millisecond
	// remainder of the real lifetime (httpd 2.4), so a sub-second timeout
	// is taken as "not given". 0 stores every session for the time sent.
	MinLifetime time.Duration
	// Unavailable chooses the answer to a request the Store could not
	// serve (an error wrapping ErrUnavailable, or any error the Store does
	// not document). nil means AnswerMiss.
	Unavailable UnavailablePolicy
	// Features, when set, announces extensions to clients that probe for
	// them (proto.FeaturesID) and enables the ones announced: TAKE is
	// served only while Features reports proto.FeatureTake, and closes the
	// connection otherwise, as a 1.5 server does, and so is GETLIFE
	// (proto.FeatureGetLife), answered from the Store's GetLife. nil: the
	// 1.5 protocol.
	Features func() uint32
}

// UnavailablePolicy returns the response payload owed for a request of
// operation op that failed with err. The result is copied; it may be shared.
type UnavailablePolicy func(op proto.Op, err error) []byte

var (
	resultNotOK    = []byte{proto.ResultNotOK}
	resultNotAdded = []byte{proto.AddErrMatching}
	resultDisconn  = []byte{proto.ResultDisconnected}
)

// AnswerMiss answers as if the session were not there: ADD 0x65 (not
// stored), every other operation 0x01. It is what dc_server answers when
// its backing store fails: clients see a cache miss and do a full
// handshake.
func AnswerMiss(op proto.Op, _ error) []byte {
	if op == proto.OpAdd {
		return resultNotAdded
	}
	return resultNotOK
}

// AnswerEmpty answers with an empty payload, which the distcache client
// library reads as a failed operation: what dc_client answers while it has
// no server.
func AnswerEmpty(proto.Op, error) []byte { return nil }

// AnswerDisconnected answers 0x02 (DC_ERR_DISCONNECTED): what dc_client
// answers a request that was in flight when its server connection died.
func AnswerDisconnected(proto.Op, error) []byte { return resultDisconn }

// ErrClose is wrapped by every error Handle returns: the original server
// closes the connection without answering, and so must the caller (that
// connection only).
var ErrClose = errors.New("close the connection")

// CloseError says why a request is answered by closing its connection.
type CloseError struct{ Reason string }

func (e *CloseError) Error() string        { return e.Reason }
func (e *CloseError) Is(target error) bool { return target == ErrClose }

// The reasons Handle closes a connection.
var (
	ErrShortAdd    error = &CloseError{"ADD request shorter than 8 bytes"}
	ErrNotRequest  error = &CloseError{"a response where a request was expected"}
	ErrBadOp       error = &CloseError{"unknown operation"}
	ErrOversizeGet error = &CloseError{"session larger than a message can carry"}
)

// Handle appends the response payload for req to out[:0] and returns it.
// TAKE, when enabled by Features, is answered as GET.
// A non-nil error (wrapping ErrClose) means the connection must be closed
// without an answer; the answers already owed to earlier requests are still
// sent. Out-of-range ids are answered without asking the Store: an ADD's id
// must be 1..64 bytes and its data 1..32768 (the 0x64..0x68 codes), and a
// GET, REMOVE or HAVE of an id outside 1..64 bytes misses.
func (h *Handler) Handle(ctx context.Context, req *proto.Message, out []byte) ([]byte, error) {
	if req.Response {
		return nil, ErrNotRequest
	}
	out = out[:0]
	switch req.Op {
	case proto.OpAdd:
		add, code, ok := proto.ParseAddRequest(req.Payload)
		if !ok {
			return nil, ErrShortAdd
		}
		if code != proto.ResultOK {
			return append(out, code), nil
		}
		if proto.IsReservedID(add.ID) {
			return append(out, proto.AddErrIDRange), nil // reserved for the probes
		}
		ttl := time.Duration(add.TimeoutMS) * time.Millisecond
		if add.TimeoutMS < 1000 && h.MinLifetime > 0 {
			ttl = h.MinLifetime
		}
		return h.addAnswer(req.Op, h.Store.Add(ctx, add.ID, add.Data, ttl), out), nil
	case proto.OpGet, proto.OpTake:
		if req.Op == proto.OpTake && h.features()&proto.FeatureTake == 0 {
			return nil, ErrBadOp
		}
		if !ValidID(req.Payload) {
			return append(out, proto.ResultNotOK), nil
		}
		var d []byte
		var err error
		switch {
		case req.Op == proto.OpTake:
			d, err = h.Store.Take(ctx, req.Payload, out)
		case proto.IsFeaturesID(req.Payload):
			if bits := h.features(); bits != 0 {
				return proto.AppendFeatures(out, bits), nil
			}
			return append(out, proto.ResultNotOK), nil
		case proto.IsNearMapID(req.Payload):
			return append(out, proto.ResultNotOK), nil // no map here (the proxy answers it)
		default:
			d, err = h.Store.Get(ctx, req.Payload, out)
		}
		return h.getAnswer(req.Op, d, err, out)
	case proto.OpGetLife:
		if h.features()&proto.FeatureGetLife == 0 {
			return nil, ErrBadOp
		}
		if !ValidID(req.Payload) || proto.IsReservedID(req.Payload) {
			return append(out, proto.ResultNotOK), nil
		}
		return h.lifeAnswer(ctx, req.Payload, out), nil
	case proto.OpRemove, proto.OpHave:
		if !ValidID(req.Payload) {
			return append(out, proto.ResultNotOK), nil
		}
		var err error
		if req.Op == proto.OpRemove {
			err = h.Store.Remove(ctx, req.Payload)
		} else {
			err = h.Store.Have(ctx, req.Payload)
		}
		return h.boolAnswer(req.Op, err, out), nil
	}
	return nil, ErrBadOp
}

func (h *Handler) features() uint32 {
	if h.Features == nil {
		return 0
	}
	return h.Features()
}

func (h *Handler) unavailable(op proto.Op, err error, out []byte) []byte {
	p := h.Unavailable
	if p == nil {
		p = AnswerMiss
	}
	return append(out[:0], p(op, err)...)
}

// ValidID reports whether id is a storable session id (1..64 bytes).
func ValidID(id []byte) bool { return len(id) >= 1 && len(id) <= proto.MaxIDLen }

// Check returns ErrInvalid unless id is 1..64 bytes, data 1..32768 bytes
// and ttl 0..7 days: the limits every Store enforces on Add.
func Check(id, data []byte, ttl time.Duration) error {
	if !ValidID(id) || len(data) < 1 || len(data) > proto.MaxDataLen ||
		ttl < 0 || ttl > proto.MaxExpiry*time.Millisecond {
		return ErrInvalid
	}
	return nil
}
