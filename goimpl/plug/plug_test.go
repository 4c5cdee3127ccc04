// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
	"golang.org/x/sys/unix"
)

const testDeadline = 10 * time.Second

type rig struct {
	t      *testing.T
	sel    *nal.Selector
	client *Plug // FlagToServer
	server *Plug
}

// newRig connects a client plug and a server plug over a socket pair whose
// four buffers have the given size.
func newRig(t *testing.T, size uint32) *rig {
	t.Helper()
	a, b := nal.NewConnection(), nal.NewConnection()
	if !a.CreatePair(b, size) {
		t.Fatal("create_pair")
	}
	r := &rig{t: t, sel: nal.NewSelector(), client: New(a, FlagToServer), server: New(b, 0)}
	if !r.client.ToSelect(r.sel) || !r.server.ToSelect(r.sel) {
		t.Fatal("to_select")
	}
	t.Cleanup(func() {
		r.client.Free()
		r.server.Free()
		r.sel.Free()
	})
	return r
}

// run does select rounds with IO on both plugs until done() holds; step
// runs after every round. Any IO failure fails the test.
func (r *rig) run(step func(), done func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !done() {
		if time.Now().After(deadline) {
			r.t.Fatal("condition not reached before the deadline")
		}
		if _, err := r.sel.Select(100000, true); err != nil && !errors.Is(err, unix.EINTR) {
			r.t.Fatal(err)
		}
		if !r.client.IO() || !r.server.IO() {
			r.t.Fatalf("plug died: client %v server %v", r.client.Err(), r.server.Err())
		}
		if step != nil {
			step()
		}
	}
}

// runUntilDead does select rounds until p.IO() fails.
func runUntilDead(t *testing.T, sel *nal.Selector, p *Plug) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for p.IO() {
		if time.Now().After(deadline) {
			t.Fatal("plug still alive")
		}
		sel.Select(100000, true)
	}
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*13+i>>8)
	}
	return b
}

func TestRoundTripSizes(t *testing.T) {
	for _, bufSize := range []uint32{32768, 4096, 100, 1} {
		for _, n := range []int{0, 1, 2047, 2048, 2049, 32768} {
			t.Run(fmt.Sprintf("buf=%d/len=%d", bufSize, n), func(t *testing.T) {
				r := newRig(t, bufSize)
				req, resp := payload(n, 1), payload(n, 2)
				if !r.client.Write(false, 0xdeadbeef, CmdAdd, req) || !r.client.Commit() {
					t.Fatal("client write/commit")
				}
				r.run(nil, func() bool { return r.server.ReadState() == ReadFull })
				uid, cmd, got, ok := r.server.Read(false)
				if !ok || uid != 0xdeadbeef || cmd != CmdAdd || !bytes.Equal(got, req) || got == nil {
					t.Fatalf("server read: ok=%v uid=%x cmd=%d len=%d", ok, uid, cmd, len(got))
				}
				if !r.server.Write(false, uid, CmdAdd, resp) || !r.server.Commit() || !r.server.Consume() {
					t.Fatal("server reply")
				}
				r.run(nil, func() bool { return r.client.ReadState() == ReadFull })
				uid, cmd, got, ok = r.client.Read(false)
				if !ok || uid != 0xdeadbeef || cmd != CmdAdd || !bytes.Equal(got, resp) {
					t.Fatalf("client read: ok=%v uid=%x cmd=%d len=%d", ok, uid, cmd, len(got))
				}
			})
		}
	}
}

func TestWireBytes(t *testing.T) {
	// A client plug's output is exactly proto.AppendMessage's encoding,
	// placed in whole frames.
	a, b := nal.NewConnection(), nal.NewConnection()
	a.CreatePair(b, 32768)
	defer b.Free()
	p := New(a, FlagToServer)
	defer p.Free()
	data := payload(5000, 3)
	if !p.Write(false, 7, CmdGet, data[:100]) || !p.WriteMore(data[100:]) || !p.Commit() || p.WriteBusy() {
		t.Fatal("write")
	}
	want, _ := proto.AppendMessage(nil, &proto.Message{UID: 7, Op: proto.OpGet, Payload: data})
	if !bytes.Equal(a.Send().Data(), want) {
		t.Fatal("encoded message differs from proto.AppendMessage")
	}
	// with a 3000-byte send buffer: one whole frame per flush
	a.SetSize(3000)
	if !p.Write(false, 7, CmdGet, data) || !p.Commit() || !p.WriteBusy() || a.Send().Used() != 2062 {
		t.Fatalf("partial commit: used %d", a.Send().Used())
	}
	if p.Write(false, 8, CmdGet, nil) {
		t.Fatal("write while the write half is busy")
	}
}

func TestStateMachine(t *testing.T) {
	r := newRig(t, 4096)
	c, s := r.client, r.server
	// write half
	if c.WriteMore([]byte("x")) || c.Commit() || c.Rollback() {
		t.Fatal("write_more/commit/rollback in EMPTY")
	}
	if c.Write(false, 1, CmdError, nil) || c.Write(false, 1, 5, nil) || c.Write(false, 1, CmdGet, make([]byte, 32769)) {
		t.Fatal("invalid cmd or oversize payload accepted (E-37)")
	}
	if !c.Write(false, 1, CmdGet, []byte("first")) || c.WriteState() != WriteUser {
		t.Fatal("write")
	}
	if c.Write(false, 2, CmdGet, []byte("second")) {
		t.Fatal("write in USER without resume")
	}
	if !c.Write(true, 3, CmdHave, make([]byte, 32768)) || c.WriteMore([]byte("x")) || c.WriteMore(nil) {
		t.Fatal("resume write / write_more overflow")
	}
	if !c.Rollback() || c.WriteState() != WriteEmpty || c.Rollback() {
		t.Fatal("rollback")
	}
	if !c.Write(false, 4, CmdRemove, []byte("ab")) || !c.WriteMore([]byte("cd")) || !c.Commit() || c.WriteState() != WriteEmpty {
		t.Fatal("commit")
	}
	// read half
	if _, _, _, ok := s.Read(false); ok || s.Consume() {
		t.Fatal("read/consume with nothing received")
	}
	r.run(nil, func() bool { return s.ReadState() == ReadFull })
	uid, cmd, p1, ok := s.Read(false)
	if !ok || uid != 4 || cmd != CmdRemove || string(p1) != "abcd" || s.ReadState() != ReadUser {
		t.Fatal("read")
	}
	if _, _, _, ok := s.Read(false); ok {
		t.Fatal("read again without resume")
	}
	if _, _, p2, ok := s.Read(true); !ok || &p2[0] != &p1[0] {
		t.Fatal("resume read")
	}
	if !s.Consume() || s.ReadState() != ReadEmpty || s.Consume() {
		t.Fatal("consume")
	}
	// an empty payload reads as a non-nil empty slice
	c.Write(false, 5, CmdHave, nil)
	c.Commit()
	r.run(nil, func() bool { return s.ReadState() == ReadFull })
	if _, _, p, ok := s.Read(false); !ok || p == nil || len(p) != 0 {
		t.Fatal("empty payload")
	}
	// a server plug's messages are responses
	if !s.Write(false, 5, CmdHave, []byte{0}) || !s.Commit() {
		t.Fatal("server write")
	}
	r.run(nil, func() bool { return c.ReadState() == ReadFull })
}

func TestFreeAndSelect(t *testing.T) {
	a, b := nal.NewConnection(), nal.NewConnection()
	a.CreatePair(b, 64)
	sel := nal.NewSelector()
	defer sel.Free()
	pa, pb := New(a, FlagNoFreeConn), New(b, 0)
	if !pa.ToSelect(sel) || pa.ToSelect(sel) || !pb.ToSelect(sel) {
		t.Fatal("to_select")
	}
	pa.FromSelect()
	if pa.IO() || sel.NumObjects() != 1 {
		t.Fatal("IO on an unbound plug")
	}
	if !pa.Free() || !a.Live() || pa.Free() || pa.IO() || pa.Write(false, 1, CmdGet, nil) {
		t.Fatal("free with NOFREE_CONN")
	}
	if !pb.Free() || b.Live() || sel.NumObjects() != 0 {
		t.Fatal("free without NOFREE_CONN must free (and unbind) the connection")
	}
	a.Free()
	var np *Plug
	if New(nil, 0) != nil || np.Free() || np.IO() || np.ToSelect(sel) || np.Consume() || np.WriteBusy() {
		t.Fatal("nil plug")
	}
	np.FromSelect()
}

func TestPipelining(t *testing.T) {
	// A client sends three requests back to back; the server answers each
	// with a 20000-byte response through a 4096-byte send buffer, and
	// defers the next request until its write half is free.
	r := newRig(t, 4096)
	const n = 3
	for i := 0; i < n; i++ {
		for !r.client.Write(false, uint32(100+i), CmdGet, []byte{byte(i)}) {
			r.run(nil, func() bool { return !r.client.WriteBusy() })
		}
		if !r.client.Commit() {
			t.Fatal("commit")
		}
	}
	var got [][]byte
	var uids []uint32
	step := func() {
		if !r.server.WriteBusy() {
			if uid, cmd, p, ok := r.server.Read(false); ok {
				resp := bytes.Repeat(p, 20000)
				if cmd != CmdGet || !r.server.Write(false, uid, cmd, resp) || !r.server.Commit() || !r.server.Consume() {
					t.Fatal("server could not answer")
				}
			}
		}
		if uid, _, p, ok := r.client.Read(false); ok {
			got = append(got, append([]byte(nil), p...))
			uids = append(uids, uid)
			if !r.client.Consume() {
				t.Fatal("client consume")
			}
		}
	}
	r.run(step, func() bool { return len(got) == n })
	for i := 0; i < n; i++ {
		if uids[i] != uint32(100+i) || !bytes.Equal(got[i], bytes.Repeat([]byte{byte(i)}, 20000)) {
			t.Fatalf("response %d: uid %d, %d bytes", i, uids[i], len(got[i]))
		}
	}
}

// raw returns a server plug (or a client plug if toServer) and the raw
// peer connection used to inject bytes.
func raw(t *testing.T, toServer bool) (*Plug, *nal.Connection, *nal.Selector) {
	a, b := nal.NewConnection(), nal.NewConnection()
	a.CreatePair(b, 32768)
	var flags uint32
	if toServer {
		flags = FlagToServer
	}
	p := New(a, flags)
	sel := nal.NewSelector()
	p.ToSelect(sel)
	b.AddToSelector(sel)
	t.Cleanup(func() { p.Free(); b.Free(); sel.Free() })
	return p, b, sel
}

func frame(resp bool, uid uint32, op proto.Op, complete bool, data []byte) []byte {
	return append(proto.AppendFrameHeader(nil, resp, uid, op, complete, len(data)), data...)
}

func TestCorruptInput(t *testing.T) {
	full := make([]byte, 2048)
	var seventeen []byte
	for i := 0; i < 16; i++ {
		seventeen = append(seventeen, frame(false, 1, proto.OpAdd, false, full)...)
	}
	seventeen = append(seventeen, frame(false, 1, proto.OpAdd, true, []byte{1})...)
	tests := []struct {
		name     string
		toServer bool
		bytes    []byte
	}{
		{"response to a server", false, frame(true, 1, proto.OpGet, true, nil)},
		{"request to a client", true, frame(false, 1, proto.OpGet, true, nil)},
		{"wrong version", false, []byte{0x00, 0x10, 0x00, 0x00, 0x00}},
		{"uid mismatch", false, append(frame(false, 1, proto.OpAdd, false, full), frame(false, 2, proto.OpAdd, true, nil)...)},
		{"op mismatch", false, append(frame(false, 1, proto.OpAdd, false, full), frame(false, 1, proto.OpGet, true, nil)...)},
		{"17 frames", false, seventeen},
		{"bad operation", false, append(frame(false, 1, proto.OpAdd, true, nil)[:10], 5, 1, 0, 0)},
		{"TAKE, not in 1.5", false, frame(false, 1, proto.OpTake, true, []byte("id"))},
		{"short incomplete frame", false, frame(false, 1, proto.OpAdd, false, []byte{1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, peer, sel := raw(t, tt.toServer)
			off := 0
			deadline := time.Now().Add(testDeadline)
			for p.IO() {
				off += int(peer.Send().Write(tt.bytes[off:]))
				if !peer.IO() || time.Now().After(deadline) {
					t.Fatal("corruption not detected")
				}
				if p.ReadState() == ReadFull {
					t.Fatal("corrupt input produced a message")
				}
				sel.Select(100000, true)
			}
			if p.Err() == nil || p.IO() {
				t.Fatal("plug not marked corrupt")
			}
		})
	}
}

func TestTolerated17thEmptyFrame(t *testing.T) {
	// 16 full frames then an empty completing frame: 32768 bytes, valid.
	p, peer, sel := raw(t, false)
	full := payload(2048, 9)
	var msg []byte
	for i := 0; i < 16; i++ {
		msg = append(msg, frame(false, 1, proto.OpAdd, false, full)...)
	}
	msg = append(msg, frame(false, 1, proto.OpAdd, true, nil)...)
	off := 0
	deadline := time.Now().Add(testDeadline)
	for p.ReadState() != ReadFull {
		off += int(peer.Send().Write(msg[off:]))
		if time.Now().After(deadline) || !p.IO() || !peer.IO() {
			t.Fatal("message not received")
		}
		sel.Select(100000, true)
	}
	if _, _, got, _ := p.Read(false); len(got) != 32768 {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestConsumeReportsNextCorruption(t *testing.T) {
	// E-38: a valid request followed by garbage. The request is readable;
	// consume returns false because of the garbage behind it.
	p, peer, sel := raw(t, false)
	peer.Send().Write(append(frame(false, 9, proto.OpHave, true, []byte("id")), 0xff, 0xff, 0xff, 0xff, 0xff))
	deadline := time.Now().Add(testDeadline)
	for p.ReadState() != ReadFull {
		if time.Now().After(deadline) || !p.IO() || !peer.IO() {
			t.Fatal("valid message not received")
		}
		sel.Select(100000, true)
	}
	uid, cmd, got, ok := p.Read(false)
	if !ok || uid != 9 || cmd != CmdHave || string(got) != "id" {
		t.Fatal("read")
	}
	if p.Consume() || p.ReadState() != ReadEmpty || p.IO() {
		t.Fatal("consume must report the following corruption and leave the plug dead")
	}
}

func TestConsumeDecodesNextMessage(t *testing.T) {
	p, peer, sel := raw(t, false)
	peer.Send().Write(append(frame(false, 1, proto.OpGet, true, []byte("a")), frame(false, 2, proto.OpGet, true, []byte("b"))...))
	deadline := time.Now().Add(testDeadline)
	for p.ReadState() != ReadFull {
		if time.Now().After(deadline) || !p.IO() || !peer.IO() {
			t.Fatal("not received")
		}
		sel.Select(100000, true)
	}
	if uid, _, _, _ := p.Read(false); uid != 1 || !p.Consume() || p.ReadState() != ReadFull {
		t.Fatal("consume did not decode the following message")
	}
	if uid, _, got, ok := p.Read(false); !ok || uid != 2 || string(got) != "b" {
		t.Fatal("second message")
	}
}

func TestDeadConnection(t *testing.T) {
	p, peer, sel := raw(t, true)
	peer.Reset()
	runUntilDead(t, sel, p)
}
