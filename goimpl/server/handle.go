// SPDX-License-Identifier: Apache-2.0

package server

import (
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Handle answers one request message against a cache, exactly as the
// original server does (doc/PROTOCOL.md §6): it returns the response payload,
// appended to out[:0]. ok is false when the original closes the connection
// without answering: an ADD shorter than 8 bytes, a response that is not a
// request, or a cache that reports an entry larger than a message can carry.
func Handle(c Cache, now time.Time, req *proto.Message, out []byte) (resp []byte, ok bool) {
	if req.Response {
		return nil, false
	}
	out = out[:0]
	switch req.Op {
	case proto.OpAdd:
		add, code, ok := proto.ParseAddRequest(req.Payload)
		if !ok {
			return nil, false
		}
		if code == proto.ResultOK && !c.Add(now, add.TimeoutMS, add.ID, add.Data) {
			code = proto.AddErrMatching
		}
		return append(out, code), true
	case proto.OpGet:
		if cap(out) < proto.MaxPayload {
			out = make([]byte, 0, proto.MaxPayload)
		}
		n := c.Get(now, req.Payload, out[:proto.MaxPayload])
		switch {
		case n == 0:
			return append(out, proto.ResultNotOK), true
		case n > proto.MaxPayload:
			return nil, false
		}
		return out[:n], true
	case proto.OpRemove:
		return append(out, result(c.Remove(now, req.Payload))), true
	case proto.OpHave:
		return append(out, result(c.Have(now, req.Payload))), true
	}
	return nil, false
}

func result(yes bool) byte {
	if yes {
		return proto.ResultOK
	}
	return proto.ResultNotOK
}
