// SPDX-License-Identifier: Apache-2.0

package server

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// unhex reads the spaced hex of doc/PROTOCOL.md §7.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wire is a DC_SERVER with one IN_SERVER client whose peer is a bare
// connection: the test writes and reads raw bytes.
type wire struct {
	t    *testing.T
	srv  *Server
	sel  *nal.Selector
	peer *nal.Connection
}

func newWire(t *testing.T) *wire {
	t.Helper()
	SetDefaultCache()
	srv := New(512)
	a, b := nal.NewConnection(), nal.NewConnection()
	sel := nal.NewSelector()
	if srv == nil || !a.CreatePair(b, 32768) || !a.AddToSelector(sel) || !b.AddToSelector(sel) {
		t.Fatal("setup")
	}
	if srv.NewClient(a, ClientFlagInServer) == nil {
		t.Fatal("NewClient")
	}
	t.Cleanup(func() { srv.Free(); b.Free(); sel.Free() })
	return &wire{t, srv, sel, b}
}

// exchange sends request bytes and returns the next n bytes the server
// sends back, pumping both sides until they arrive (bounded).
func (w *wire) exchange(req []byte, n int) []byte {
	w.t.Helper()
	if int(w.peer.Send().Write(req)) != len(req) {
		w.t.Fatal("request does not fit")
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(w.peer.Read().Used()) < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("got %d of %d response bytes", w.peer.Read().Used(), n)
		}
		w.sel.Select(100000, true)
		w.srv.ClientsIO(time.Now())
		if !w.peer.IO() {
			w.t.Fatal("server closed the connection")
		}
	}
	out := make([]byte, n)
	w.peer.Read().Read(out)
	return out
}

// The exchanges captured from the original binaries (doc/PROTOCOL.md §7),
// byte for byte, through the whole server path.
func TestWorkedExamplesOnTheWire(t *testing.T) {
	w := newWire(t)
	add := unhex(t, `00 11 00 00 00 00 00 00 01 00 00 01 00 18
		00 04 93 e0 00 00 00 08 01 02 03 04 05 06 07 08 53 45 53 53 44 41 54 41`)
	addOK := unhex(t, `00 11 00 00 01 00 00 00 01 00 00 01 00 01 00`)
	cases := []struct {
		name      string
		req, resp []byte
	}{
		{"12.1/12.2 add", add, addOK},
		{"duplicate add", add, append(addOK[:len(addOK)-1:len(addOK)-1], 0x65)},
		{"12.3/12.4 get hit",
			unhex(t, `00 11 00 00 00 00 00 00 02 00 01 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 02 00 01 01 00 08 53 45 53 53 44 41 54 41`)},
		{"12.5 have hit",
			unhex(t, `00 11 00 00 00 00 00 00 03 00 03 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 03 00 03 01 00 01 00`)},
		{"12.5 remove ok",
			unhex(t, `00 11 00 00 00 00 00 00 04 00 02 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 04 00 02 01 00 01 00`)},
		{"12.5 remove miss",
			unhex(t, `00 11 00 00 00 00 00 00 04 00 02 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 04 00 02 01 00 01 01`)},
		{"12.5 have miss",
			unhex(t, `00 11 00 00 00 00 00 00 03 00 03 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 03 00 03 01 00 01 01`)},
		{"12.5 get miss",
			unhex(t, `00 11 00 00 00 00 00 00 06 00 01 01 00 08 01 02 03 04 05 06 07 08`),
			unhex(t, `00 11 00 00 01 00 00 00 06 00 01 01 00 01 01`)},
	}
	for _, cs := range cases {
		if got := w.exchange(cs.req, len(cs.resp)); !bytes.Equal(got, cs.resp) {
			t.Errorf("%s:\n got % x\nwant % x", cs.name, got, cs.resp)
		}
	}
	if n := w.srv.NumOperations(); n != uint64(len(cases)) {
		t.Errorf("%d operations counted, want %d", n, len(cases))
	}
}

// §12.6: a 5000-byte session comes back in frames of 2048, 2048 and 904
// bytes with these headers.
func TestWorkedMultiFrameGet(t *testing.T) {
	w := newWire(t)
	data := bytes.Repeat([]byte("0123456789"), 500)
	id := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	// ADD (uid 9) in 3 frames, written by hand: 8+8+5000 = 5016 bytes.
	payload := append(append(unhex(t, `00 04 93 e0 00 00 00 08`), id...), data...)
	var req []byte
	for off := 0; off < len(payload); off += 2048 {
		end, complete := min(off+2048, len(payload)), byte(0)
		if end == len(payload) {
			complete = 1
		}
		req = append(req, 0, 0x11, 0, 0, 0, 0, 0, 0, 9, 0, 0, complete, byte((end-off)>>8), byte(end-off))
		req = append(req, payload[off:end]...)
	}
	if got := w.exchange(req, 15); got[14] != 0 {
		t.Fatalf("add answered % x", got)
	}
	got := w.exchange(unhex(t, `00 11 00 00 00 00 00 00 0a 00 01 01 00 08 01 02 03 04 05 06 07 08`), 3*14+5000)
	headers := []string{
		`00 11 00 00 01 00 00 00 0a 00 01 00 08 00`,
		`00 11 00 00 01 00 00 00 0a 00 01 00 08 00`,
		`00 11 00 00 01 00 00 00 0a 00 01 01 03 88`,
	}
	var body []byte
	for i, h := range headers {
		off := i * (14 + 2048)
		if !bytes.Equal(got[off:off+14], unhex(t, h)) {
			t.Errorf("frame %d header % x, want %s", i+1, got[off:off+14], h)
		}
		body = append(body, got[off+14:min(off+14+2048, len(got))]...)
	}
	if !bytes.Equal(body, data) {
		t.Error("session data differs")
	}
}

// A client without IN_SERVER whose GET of a 20000-byte session is followed
// by garbage: Process keeps returning true until the whole answer has left
// the 4096-byte send buffer, then false (E-34 with E-38).
func TestProcessFlushesBeforeClosing(t *testing.T) {
	SetDefaultCache()
	srv := New(64)
	a, b := nal.NewConnection(), nal.NewConnection()
	sel := nal.NewSelector()
	if srv == nil || !a.CreatePair(b, 4096) || !a.AddToSelector(sel) || !b.AddToSelector(sel) {
		t.Fatal("setup")
	}
	defer func() { b.Free(); sel.Free(); srv.Free() }()
	cl := srv.NewClient(a, 0)
	data := bytes.Repeat([]byte("z"), 20000)
	srv.Cache().Add(time.Now(), 60000, exID, data)
	req, _ := proto.AppendMessage(nil, &proto.Message{UID: 77, Op: proto.OpGet, Payload: exID})
	b.Send().Write(append(req, "garbage!garbage!"...))
	want, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: 77, Op: proto.OpGet, Payload: data})

	var got []byte
	drain := func() {
		b.IO()
		got = append(got, b.Read().Data()...)
		b.Read().Discard(b.Read().Used())
	}
	deadline := time.Now().Add(10 * time.Second)
	for cl.Process(time.Now()) {
		if time.Now().After(deadline) {
			t.Fatal("Process never gave up on the corrupt client")
		}
		sel.Select(100000, true)
		a.IO() // the caller runs the connection's I/O
		drain()
	}
	for len(got) < len(want) && time.Now().Before(deadline) {
		sel.Select(100000, true)
		drain()
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes of the %d-byte answer before the close", len(got), len(want))
	}
	if srv.NumOperations() != 1 || !cl.Delete() {
		t.Fatal("operation count or delete")
	}
}
