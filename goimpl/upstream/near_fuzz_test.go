// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

type idSink struct{ ids [][]byte }

func (s *idSink) Invalidate(id []byte) { s.ids = append(s.ids, append([]byte(nil), id...)) }
func (s *idSink) Flush()               {}

// FuzzNoticeStream: a subscription's decoder never panics or grows past
// what it is given, passes on only ids of 1..64 bytes, and stops at the
// first thing that is not the next notice.
func FuzzNoticeStream(f *testing.F) {
	notice := func(uid uint32, op proto.Op, resp bool, id string) []byte {
		b, _ := proto.AppendMessage(nil, &proto.Message{Response: resp, UID: uid, Op: op, Payload: []byte(id)})
		return b
	}
	f.Add(append(notice(1, proto.OpNotice, true, "a"), notice(2, proto.OpNotice, true, "bb")...))
	f.Add(notice(2, proto.OpNotice, true, "a"))
	f.Add(notice(1, proto.OpGet, true, "a"))
	f.Add(notice(1, proto.OpNotice, false, "a"))
	f.Add(notice(1, proto.OpNotice, true, ""))
	f.Add(notice(1, proto.OpNotice, true, string(make([]byte, 65))))
	f.Add(notice(1, proto.OpNotice, true, string(make([]byte, 5000))))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sink := &idSink{}
		l := &link{u: &Upstream{sink: sink}}
		l.sub.asm = proto.Assembler{Want: proto.WantResponses}
		for len(b) > 0 && l.sub.failed == nil {
			k := min(len(b), 1+len(b)%97)
			l.sub.buf = append(l.sub.buf, b[:k]...)
			b = b[k:]
			l.decode()
		}
		for i, id := range sink.ids {
			if len(id) < 1 || len(id) > proto.MaxIDLen {
				t.Fatalf("notice %d: an id of %d bytes passed on", i, len(id))
			}
		}
		if l.sub.uid != uint32(len(sink.ids)) {
			t.Fatalf("%d ids passed on, last uid %d", len(sink.ids), l.sub.uid)
		}
		if len(l.sub.buf) > proto.MaxMessageSize {
			t.Fatalf("%d bytes buffered", len(l.sub.buf))
		}
	})
}
