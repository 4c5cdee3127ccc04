package server

import (
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// FuzzHandle sends arbitrary requests to a small cache. The handler must
// not panic, must answer every well-formed request except a short ADD, and
// its answers must be consistent with a HAVE that follows.
func FuzzHandle(f *testing.F) {
	f.Add(uint8(0), proto.AppendAddRequest(nil, 300000, exID, exData))
	f.Add(uint8(1), exID)
	f.Add(uint8(2), exID)
	f.Add(uint8(3), exID)
	f.Add(uint8(0), []byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add(uint8(0), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, op uint8, payload []byte) {
		c, _ := NewDefaultCache(64)
		m := &proto.Message{Op: proto.Op(op % 4), Payload: payload}
		out, ok := Handle(c, t0, m, nil)
		if !ok {
			if m.Op != proto.OpAdd || len(payload) >= 8 {
				t.Fatalf("%v with %d bytes dropped", m.Op, len(payload))
			}
			return
		}
		if len(out) == 0 || len(out) > proto.MaxPayload {
			t.Fatalf("response of %d bytes", len(out))
		}
		if m.Op == proto.OpAdd && len(out) == 1 && out[0] == proto.ResultOK {
			add, _, _ := proto.ParseAddRequest(payload)
			if c.Have(t0, add.ID) != (add.TimeoutMS > 0) {
				t.Fatalf("added entry (timeout %d) has=%v", add.TimeoutMS, !(add.TimeoutMS > 0))
			}
		}
		if m.Op != proto.OpAdd && m.Op != proto.OpGet && len(out) != 1 {
			t.Fatalf("%v answered %d bytes", m.Op, len(out))
		}
	})
}
