// SPDX-License-Identifier: Apache-2.0

package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
)

var t0 = time.UnixMicro(1_700_000_000_123_456)

func mustDefault(t testing.TB, n int) Cache {
	t.Helper()
	c, err := NewDefaultCache(n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	exID   = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	exData = []byte("SESSDATA")
)

func req(op proto.Op, payload []byte) *proto.Message {
	return &proto.Message{UID: 1, Op: op, Payload: payload}
}

func mustHandle(t *testing.T, c Cache, m *proto.Message) []byte {
	t.Helper()
	out, ok := Handle(c, t0, m, nil)
	if !ok {
		t.Fatalf("%v dropped", m.Op)
	}
	return out
}

// The exchanges of doc/PROTOCOL.md §7 through the handler.
func TestHandleWorkedExamples(t *testing.T) {
	c, _ := NewDefaultCache(512)
	add := req(proto.OpAdd, proto.AppendAddRequest(nil, 300000, exID, exData))
	if out := mustHandle(t, c, add); !bytes.Equal(out, []byte{0x00}) {
		t.Fatalf("add: %x", out)
	}
	if out := mustHandle(t, c, add); !bytes.Equal(out, []byte{0x65}) {
		t.Fatalf("duplicate add: %x", out)
	}
	if out := mustHandle(t, c, req(proto.OpGet, exID)); !bytes.Equal(out, exData) {
		t.Fatalf("get: %x", out)
	}
	if out := mustHandle(t, c, req(proto.OpHave, exID)); !bytes.Equal(out, []byte{0}) {
		t.Fatalf("have: %x", out)
	}
	if out := mustHandle(t, c, req(proto.OpRemove, exID)); !bytes.Equal(out, []byte{0}) {
		t.Fatalf("remove: %x", out)
	}
	for _, op := range []proto.Op{proto.OpGet, proto.OpHave, proto.OpRemove} {
		if out := mustHandle(t, c, req(op, exID)); !bytes.Equal(out, []byte{1}) {
			t.Fatalf("%v miss: %x", op, out)
		}
	}
	// GET of an empty id is legal and misses.
	if out := mustHandle(t, c, req(proto.OpGet, nil)); !bytes.Equal(out, []byte{1}) {
		t.Fatalf("empty get: %x", out)
	}
}

func TestHandleAddCodes(t *testing.T) {
	c, _ := NewDefaultCache(512)
	cases := []struct {
		payload []byte
		code    byte
	}{
		{proto.AppendAddRequest(nil, proto.MaxExpiry+1, exID, exData), proto.AddErrTimeoutRange},
		{proto.AppendAddRequest(nil, 1000, exID, nil), proto.AddErrCorrupt},
		{proto.AppendAddRequest(nil, 1000, nil, exData), proto.AddErrIDRange},
		{proto.AppendAddRequest(nil, 1000, make([]byte, 65), exData), proto.AddErrIDRange},
		{proto.AppendAddRequest(nil, 0, []byte("zero"), exData), proto.ResultOK},
	}
	for i, cs := range cases {
		if out := mustHandle(t, c, req(proto.OpAdd, cs.payload)); len(out) != 1 || out[0] != cs.code {
			t.Errorf("case %d: %x, want %02x", i, out, cs.code)
		}
	}
	if _, ok := Handle(c, t0, req(proto.OpAdd, []byte{0, 0, 0, 0, 0, 0, 0}), nil); ok {
		t.Error("7-byte ADD answered")
	}
	if _, ok := Handle(c, t0, &proto.Message{Response: true, Op: proto.OpGet}, nil); ok {
		t.Error("response handled as a request")
	}
}

func TestHandleLargeSession(t *testing.T) {
	c := cache.New(cache.Config{})
	data := bytes.Repeat([]byte{7}, proto.MaxPayload-8-len(exID))
	if out := mustHandle(t, c, req(proto.OpAdd, proto.AppendAddRequest(nil, 5000, exID, data))); out[0] != 0 {
		t.Fatalf("add: %x", out)
	}
	if out := mustHandle(t, c, req(proto.OpGet, exID)); !bytes.Equal(out, data) {
		t.Fatalf("get returned %d bytes", len(out))
	}
}

// bigCache reports an entry longer than a message can carry.
type bigCache struct{ Cache }

func (bigCache) Get(time.Time, []byte, []byte) int { return proto.MaxPayload + 1 }

func TestHandleOversizeGet(t *testing.T) {
	if _, ok := Handle(bigCache{cache.New(cache.Config{})}, t0, req(proto.OpGet, exID), nil); ok {
		t.Fatal("oversize entry answered")
	}
}
