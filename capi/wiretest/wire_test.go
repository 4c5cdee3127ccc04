// SPDX-License-Identifier: Apache-2.0

package wiretest

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// goDecode is what goimpl/proto makes of b for a reader that wants want:
// the status and the message dcw_decode must agree with.
func goDecode(b []byte, want int) (Status, Message) {
	a := proto.Assembler{Want: proto.Direction(want)}
	m, n, err := a.Decode(b)
	switch {
	case err != nil:
		return Corrupt, Message{}
	case m == nil:
		return Incomplete, Message{}
	}
	return Done, Message{Response: m.Response, UID: m.UID, Op: uint8(m.Op), Payload: append([]byte{}, m.Payload...), Used: n}
}

// same fails t unless the C and Go decoders agree on b, for every
// direction; it returns the status they agree on.
func same(t *testing.T, b []byte) Status {
	t.Helper()
	var st Status
	for _, want := range []int{WantAny, WantRequests, WantResponses} {
		gs, gm := goDecode(b, want)
		cs, cm := Decode(b, want)
		if gs != cs || gm.Response != cm.Response || gm.UID != cm.UID || gm.Op != cm.Op ||
			!bytes.Equal(gm.Payload, cm.Payload) || gm.Used != cm.Used {
			t.Fatalf("want %d, %d bytes % x...: Go %d %+v, C %d %+v", want, len(b), b[:min(len(b), 32)], gs, gm, cs, cm)
		}
		if want == WantAny {
			st = gs
		}
	}
	return st
}

var sizes = []int{0, 1, 2, 5, 100, 2047, 2048, 2049, 4096, 4100, 30000, proto.MaxPayload}

// TestEncode: the C encoder writes goimpl/proto's bytes for every size,
// direction, operation and split of the payload into parts, and refuses
// what proto refuses.
func TestEncode(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range sizes {
		p := make([]byte, n)
		r.Read(p)
		for op := proto.Op(0); op <= proto.OpGetLife+1; op++ {
			for _, resp := range []bool{false, true} {
				uid := r.Uint32()
				want, err := proto.AppendMessage(nil, &proto.Message{Response: resp, UID: uid, Op: op, Payload: p})
				for _, split := range []int{0, n / 3, n} {
					got := Encode(resp, uid, uint8(op), p, split)
					if err != nil {
						if got != nil {
							t.Fatalf("op %d, %d bytes: proto refuses (%v), C encodes", op, n, err)
						}
						continue
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("op %d, %d bytes, split %d: C and proto differ", op, n, split)
					}
				}
			}
		}
	}
	if Encode(false, 1, uint8(proto.OpGet), make([]byte, proto.MaxPayload+1), 0) != nil {
		t.Fatal("C encodes a payload over the limit")
	}
}

// TestDecode: the C decoder takes goimpl/proto's messages back, and agrees
// with proto's Assembler on every prefix (incomplete), on a message
// followed by more bytes, and on every one-byte corruption of the header.
func TestDecode(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	corrupt := 0
	for _, n := range sizes {
		p := make([]byte, n)
		r.Read(p)
		for _, resp := range []bool{false, true} {
			m := &proto.Message{Response: resp, UID: r.Uint32(), Op: proto.Op(r.Intn(int(proto.OpGetLife) + 1)), Payload: p}
			b, err := proto.AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if same(t, b) != Done {
				t.Fatalf("%d bytes: not decoded", n)
			}
			same(t, append(append([]byte{}, b...), 0, 0x11, 0, 0))
			for k := 0; k < len(b); k += 1 + k/7 {
				if same(t, b[:k]) != Incomplete {
					t.Fatalf("%d of %d bytes: decoded", k, len(b))
				}
			}
			// every header byte of the first and the last frame
			last := len(b) - proto.EncodedSize(n%proto.MaxFrameData) + n - n%proto.MaxFrameData
			for _, at := range []int{0, max(0, last)} {
				for i := 0; i < proto.HeaderSize && at+i < len(b); i++ {
					for _, v := range []byte{0, 1, 2, 0x11, 0x80, 0xff, b[at+i] ^ 1} {
						c := append([]byte{}, b...)
						c[at+i] = v
						if same(t, c) == Corrupt {
							corrupt++
						}
					}
				}
			}
		}
	}
	if corrupt == 0 {
		t.Fatal("no corruption was detected")
	}
}

// TestDecodeRules: the malformed streams the engine must refuse, one per
// rule of goimpl/proto, refused by C too (and the valid neighbours
// accepted).
func TestDecodeRules(t *testing.T) {
	hdr := func(level uint32, resp byte, uid uint32, class, op, complete byte, n uint16, data int) []byte {
		b := binary.BigEndian.AppendUint32(nil, level)
		b = append(b, resp)
		b = binary.BigEndian.AppendUint32(b, uid)
		b = append(b, class, op, complete)
		b = binary.BigEndian.AppendUint16(b, n)
		return append(b, make([]byte, data)...)
	}
	full := func(uid uint32, op byte) []byte { return hdr(proto.ProtoLevel, 1, uid, 0, op, 0, 2048, 2048) }
	cases := []struct {
		name string
		b    []byte
		want Status
	}{
		{"ok", hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 3, 3), Done},
		{"other patch level", hdr(proto.ProtoLevel|0x55, 1, 7, 0, 1, 1, 3, 3), Done},
		{"version", hdr(0x00120000, 1, 7, 0, 1, 1, 3, 3), Corrupt},
		{"version seen in 4 bytes", hdr(0x00120000, 1, 7, 0, 1, 1, 3, 3)[:4], Corrupt},
		{"is_response 2", hdr(proto.ProtoLevel, 2, 7, 0, 1, 1, 3, 3), Corrupt},
		{"op_class", hdr(proto.ProtoLevel, 1, 7, 1, 1, 1, 3, 3), Corrupt},
		{"op 8", hdr(proto.ProtoLevel, 1, 7, 0, 8, 1, 3, 3), Corrupt},
		{"complete 2", hdr(proto.ProtoLevel, 1, 7, 0, 1, 2, 3, 3), Corrupt},
		{"data_len 2049", hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 2049, 2049), Corrupt},
		{"short incomplete frame", hdr(proto.ProtoLevel, 1, 7, 0, 1, 0, 100, 100), Corrupt},
		{"data to come", hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 300, 299), Incomplete},
		{"two frames", append(full(7, 1), hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 1, 1)...), Done},
		{"continuation uid", append(full(7, 1), hdr(proto.ProtoLevel, 1, 8, 0, 1, 1, 1, 1)...), Corrupt},
		{"continuation op", append(full(7, 1), hdr(proto.ProtoLevel, 1, 7, 0, 2, 1, 1, 1)...), Corrupt},
		{"continuation direction", append(full(7, 1), hdr(proto.ProtoLevel, 0, 7, 0, 1, 1, 1, 1)...), Corrupt},
		{"too long", append(bytes.Repeat(full(7, 1), 16), hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 1, 1)...), Corrupt},
		{"16 frames and an empty one", append(bytes.Repeat(full(7, 1), 16), hdr(proto.ProtoLevel, 1, 7, 0, 1, 1, 0, 0)...), Done},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), Corrupt},
	}
	for _, c := range cases {
		if got := same(t, c.b); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if s, _ := Decode(hdr(proto.ProtoLevel, 0, 7, 0, 1, 1, 3, 3), WantResponses); s != Corrupt {
		t.Error("a request is taken for a response")
	}
}

// FuzzDecode: on any bytes, the C decoder says what goimpl/proto's says.
func FuzzDecode(f *testing.F) {
	for _, n := range []int{0, 10, 2048, 4100} {
		b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: 9, Op: proto.OpGet, Payload: make([]byte, n)})
		f.Add(b)
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0, 0x11, 0, 0, 1, 0, 0, 0, 9, 0, 1, 1, 0, 2, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) <= MaxMessage+proto.HeaderSize {
			same(t, b)
		}
	})
}
