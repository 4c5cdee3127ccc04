// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"bytes"
	"testing"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

type decoded struct {
	uid     uint32
	op      proto.Op
	payload []byte
}

// FuzzPlugDecode feeds arbitrary bytes to a server plug, in chunks that
// fit its connection's read buffer, and checks it against proto's
// Assembler: the same messages in the same order, and corruption
// detected exactly when the Assembler reports it.
func FuzzPlugDecode(f *testing.F) {
	a, b := nal.NewConnection(), nal.NewConnection()
	if !a.CreatePair(b, 4096) {
		f.Fatal("create_pair")
	}
	defer a.Free()
	defer b.Free()
	req := func(uid uint32, op proto.Op, n int) []byte {
		m, _ := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: bytes.Repeat([]byte{byte(n)}, n)})
		return m
	}
	f.Add(req(1, proto.OpAdd, 10))
	f.Add(append(req(1, proto.OpGet, 3000), req(2, proto.OpHave, 0)...))
	f.Add(append(req(1, proto.OpGet, 1), 0, 0x10, 0, 0, 0))
	f.Add([]byte{0, 0x11, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, a, in) })
}

// checkDecode is the body of FuzzPlugDecode.
func checkDecode(t *testing.T, a *nal.Connection, in []byte) {
	// reference
	var want []decoded
	asm := proto.Assembler{Want: proto.WantRequests}
	rest := in
	wantErr := false
	for {
		m, n, err := asm.Decode(rest)
		rest = rest[n:]
		if err != nil {
			wantErr = true
			break
		}
		if m == nil {
			break
		}
		if !m.Op.Valid() { // an extension of ours: the plug speaks 1.5
			wantErr = true
			break
		}
		want = append(want, decoded{m.UID, m.Op, append([]byte(nil), m.Payload...)})
	}
	// plug
	a.Read().Reset()
	p := New(a, FlagNoFreeConn)
	var got []decoded
	gotErr := false
	off := 0
	for rounds := 0; !gotErr; rounds++ {
		if rounds > len(in)+100 {
			t.Fatalf("no progress: off %d of %d, state %d, buffered %d", off, len(in), p.ReadState(), a.Read().Used())
		}
		off += int(a.Read().Write(in[off:]))
		if !p.readFlush() {
			gotErr = true
			break
		}
		uid, cmd, pl, ok := p.Read(false)
		if !ok {
			if off == len(in) && a.Read().Empty() {
				break
			}
			continue
		}
		op, _ := proto.OpFromCmd(cmd)
		if pl == nil || len(pl) > proto.MaxPayload {
			t.Fatal("bad payload")
		}
		got = append(got, decoded{uid, op, append([]byte(nil), pl...)})
		if !p.Consume() {
			gotErr = true
		}
	}
	p.Free()
	if gotErr != wantErr || len(got) != len(want) {
		t.Fatalf("plug: %d messages, corrupt=%v; assembler: %d messages, corrupt=%v", len(got), gotErr, len(want), wantErr)
	}
	for i := range got {
		if got[i].uid != want[i].uid || got[i].op != want[i].op || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("message %d differs", i)
		}
	}
}
