// SPDX-License-Identifier: Apache-2.0

package server

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// FuzzHandle sends one arbitrary request to a default cache that holds one
// session (exID → exData) and checks the answer against the rules of
// doc/PROTOCOL.md §6, worked out here independently of proto.ParseAddRequest:
// nothing panics, an answer is given exactly when the original gives one,
// and its bytes (and the cache afterwards) are what the rules say.
func FuzzHandle(f *testing.F) {
	f.Add(uint8(0), proto.AppendAddRequest(nil, 300000, []byte("other-id"), exData))
	f.Add(uint8(0), proto.AppendAddRequest(nil, 300000, exID, exData)) // duplicate
	f.Add(uint8(0), proto.AppendAddRequest(nil, 0, []byte("zero"), exData))
	f.Add(uint8(0), proto.AppendAddRequest(nil, proto.MaxExpiry+1, exID, exData))
	f.Add(uint8(0), proto.AppendAddRequest(nil, 1000, nil, exData))
	f.Add(uint8(0), proto.AppendAddRequest(nil, 1000, make([]byte, 65), exData))
	f.Add(uint8(0), []byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add(uint8(0), []byte{1, 2, 3})
	f.Add(uint8(0), proto.AppendAddRequest(nil, 1000, []byte("i"), make([]byte, 32769)))
	f.Add(uint8(1), exID)
	f.Add(uint8(1), []byte{})
	f.Add(uint8(2), exID)
	f.Add(uint8(3), []byte("absent"))
	f.Add(uint8(7), exID)
	f.Fuzz(func(t *testing.T, op uint8, payload []byte) {
		c := mustDefault(t, 64)
		c.Add(t0, 60000, exID, exData)
		m := &proto.Message{UID: 9, Op: proto.Op(op), Payload: payload}
		out, ok := Handle(c, t0, m, nil)
		want, answered := model(op, payload)
		if ok != answered {
			t.Fatalf("op %d, %d bytes: answered=%v, want %v", op, len(payload), ok, answered)
		}
		if !ok {
			return
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("op %d, payload %x: got %x, want %x", op, payload, out, want)
		}
		switch {
		case op == 0 && want[0] == proto.ResultOK:
			add := payload[8 : 8+binary.BigEndian.Uint32(payload[4:])]
			// t0 is 456µs past a millisecond: a 0 ms lifetime is over.
			if live := binary.BigEndian.Uint32(payload) > 0; c.Have(t0, add) != live {
				t.Fatalf("added entry live=%v, want %v", !live, live)
			}
		case op == 2 && want[0] == proto.ResultOK:
			if c.Have(t0, exID) {
				t.Fatal("removed entry still there")
			}
		}
	})
}

// model is the server's answer to one request against a cache holding
// only exID → exData: the response payload, or false for "close without
// answering".
func model(op uint8, p []byte) ([]byte, bool) {
	hit := bytes.Equal(p, exID)
	switch op {
	case 0:
		if len(p) < 8 {
			return nil, false
		}
		timeout, idLen, rest := binary.BigEndian.Uint32(p), uint64(binary.BigEndian.Uint32(p[4:])), uint64(len(p)-8)
		switch {
		case timeout > 604800000:
			return []byte{0x66}, true
		case idLen >= rest:
			return []byte{0x64}, true
		case idLen == 0 || idLen > 64:
			return []byte{0x67}, true
		case rest-idLen > 32768: // only when called with an oversized payload
			return []byte{0x68}, true
		case bytes.Equal(p[8:8+idLen], exID):
			return []byte{0x65}, true
		}
		return []byte{0x00}, true
	case 1:
		if hit {
			return exData, true
		}
		return []byte{0x01}, true
	case 2, 3:
		if hit {
			return []byte{0x00}, true
		}
		return []byte{0x01}, true
	}
	return nil, false
}
