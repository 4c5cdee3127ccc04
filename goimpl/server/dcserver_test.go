// SPDX-License-Identifier: Apache-2.0

package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// rig is a DC_SERVER with one IN_SERVER client connected through a socket
// pair to a client-side plug, all on one selector.
type rig struct {
	t      *testing.T
	srv    *Server
	sel    *nal.Selector
	sc     *Client
	cconn  *nal.Connection
	cplug  *plug.Plug
	closed bool
}

func newRig(t *testing.T, flags uint32) *rig {
	t.Helper()
	SetDefaultCache()
	srv := New(512)
	if srv == nil {
		t.Fatal("New(512) failed")
	}
	a, b := nal.NewConnection(), nal.NewConnection()
	if !a.CreatePair(b, 32768) {
		t.Fatal("CreatePair")
	}
	sel := nal.NewSelector()
	if !a.AddToSelector(sel) || !b.AddToSelector(sel) {
		t.Fatal("AddToSelector")
	}
	r := &rig{t: t, srv: srv, sel: sel, sc: srv.NewClient(a, flags), cconn: b, cplug: plug.New(b, plug.FlagToServer)}
	t.Cleanup(func() {
		r.cplug.Free()
		srv.Free()
		sel.Free()
	})
	return r
}

// round runs one select and I/O on both sides.
func (r *rig) round() {
	if n, err := r.sel.Select(200000, true); n < 0 {
		r.t.Fatalf("select: %v", err)
	}
	r.srv.ClientsIO(time.Now())
	if !r.closed && !r.cplug.IO() {
		r.closed = true
	}
}

func (r *rig) send(uid uint32, op proto.Op, payload []byte) {
	r.t.Helper()
	if !r.cplug.Write(false, uid, op.Cmd(), payload) || !r.cplug.Commit() {
		r.t.Fatal("client write")
	}
}

// recv waits (in select rounds, bounded) for the next response.
func (r *rig) recv() (uint32, proto.Op, []byte) {
	r.t.Helper()
	for i := 0; i < 200; i++ {
		if uid, cmd, p, ok := r.cplug.Read(false); ok {
			out := append([]byte(nil), p...)
			r.cplug.Consume()
			op, _ := proto.OpFromCmd(cmd)
			return uid, op, out
		}
		if r.closed {
			r.t.Fatal("connection closed while waiting for a response")
		}
		r.round()
	}
	r.t.Fatal("no response")
	return 0, 0, nil
}

func TestServerRoundTrip(t *testing.T) {
	r := newRig(t, ClientFlagInServer)
	r.send(1, proto.OpAdd, proto.AppendAddRequest(nil, 300000, exID, exData))
	if uid, op, p := r.recv(); uid != 1 || op != proto.OpAdd || !bytes.Equal(p, []byte{0}) {
		t.Fatalf("add: %d %v %x", uid, op, p)
	}
	r.send(2, proto.OpGet, exID)
	if uid, op, p := r.recv(); uid != 2 || op != proto.OpGet || !bytes.Equal(p, exData) {
		t.Fatalf("get: %d %v %x", uid, op, p)
	}
	r.send(3, proto.OpHave, []byte("nope"))
	if _, _, p := r.recv(); !bytes.Equal(p, []byte{1}) {
		t.Fatalf("have: %x", p)
	}
	if n := r.srv.NumOperations(); n != 3 {
		t.Fatalf("operations %d", n)
	}
	if n := r.srv.ItemsStored(time.Now()); n != 1 {
		t.Fatalf("items %d", n)
	}
	r.srv.ResetOperations()
	if r.srv.NumOperations() != 0 {
		t.Fatal("reset")
	}
}

// Two GETs of a 20000-byte session pipelined on one connection: the
// original dropped the connection (E-5); both must be answered, in order.
func TestServerPipelinedLargeResponses(t *testing.T) {
	r := newRig(t, ClientFlagInServer)
	big := bytes.Repeat([]byte{0x42}, 20000)
	r.send(1, proto.OpAdd, proto.AppendAddRequest(nil, 300000, exID, big))
	r.recv()
	// Queue two GETs at once, bypassing the one-message plug on our side.
	var raw []byte
	for uid := uint32(10); uid < 12; uid++ {
		raw, _ = proto.AppendMessage(raw, &proto.Message{UID: uid, Op: proto.OpGet, Payload: exID})
	}
	if r.cconn.Send().Write(raw) != uint32(len(raw)) {
		t.Fatal("could not queue the requests")
	}
	for uid := uint32(10); uid < 12; uid++ {
		got, _, p := r.recv()
		if got != uid || !bytes.Equal(p, big) {
			t.Fatalf("response uid %d (want %d), %d bytes", got, uid, len(p))
		}
	}
}

func TestServerDropsShortAdd(t *testing.T) {
	r := newRig(t, ClientFlagInServer)
	r.send(1, proto.OpAdd, []byte{1, 2, 3})
	for i := 0; i < 50 && !r.closed; i++ {
		r.round()
	}
	if !r.closed || !r.srv.ClientsEmpty() {
		t.Fatalf("closed=%v empty=%v", r.closed, r.srv.ClientsEmpty())
	}
	if r.srv.NumOperations() != 0 {
		t.Fatal("dropped request counted")
	}
}

// A valid request followed by garbage: the answer still arrives, then the
// connection closes (E-38).
func TestServerAnswersBeforeClosingOnGarbage(t *testing.T) {
	r := newRig(t, ClientFlagInServer)
	raw, _ := proto.AppendMessage(nil, &proto.Message{UID: 5, Op: proto.OpHave, Payload: exID})
	raw = append(raw, "GET / HTTP/1.0\r\n\r\n"...)
	r.cconn.Send().Write(raw)
	uid, _, p := r.recv()
	if uid != 5 || !bytes.Equal(p, []byte{1}) {
		t.Fatalf("answer %d %x", uid, p)
	}
	for i := 0; i < 50 && !r.srv.ClientsEmpty(); i++ {
		r.round()
	}
	if !r.srv.ClientsEmpty() {
		t.Fatal("client with garbage kept")
	}
}

// A client without IN_SERVER: the caller runs the connection's I/O and
// calls Process (the mode that never worked in the original, E-34).
func TestServerProcessWithoutInServer(t *testing.T) {
	r := newRig(t, 0)
	r.send(7, proto.OpAdd, proto.AppendAddRequest(nil, 300000, exID, exData))
	for i := 0; i < 100; i++ {
		r.sel.Select(200000, true)
		if !r.sc.plug.Conn().IO() || !r.sc.Process(time.Now()) {
			t.Fatal("client failed")
		}
		r.cplug.IO()
		if uid, _, p, ok := r.cplug.Read(false); ok {
			if uid != 7 || !bytes.Equal(p, []byte{0}) {
				t.Fatalf("answer %d %x", uid, p)
			}
			if !r.sc.Delete() || r.sc.Delete() || !r.srv.ClientsEmpty() {
				t.Fatal("delete semantics")
			}
			return
		}
	}
	t.Fatal("no answer")
}

type countingCache struct {
	Cache
	freed *bool
}

func (c countingCache) Free() { *c.freed = true }

func TestCacheSelection(t *testing.T) {
	if SetCache(nil) {
		t.Fatal("nil implementation accepted")
	}
	freed := false
	var asked int
	SetCache(func(n int) (Cache, error) {
		asked = n
		return countingCache{cache.New(cache.Config{}), &freed}, nil
	})
	s := New(7)
	if s == nil || asked != 7 {
		t.Fatalf("custom factory not used (asked %d)", asked)
	}
	s.Free()
	if !freed {
		t.Fatal("cache Free not called")
	}
	SetDefaultCache()
	if New(63) != nil || New(60001) != nil {
		t.Fatal("default cache accepted a size outside 64..60000")
	}
	// Objects survive misuse.
	var nilSrv *Server
	nilSrv.Free()
	if nilSrv.NewClient(nil, 0) != nil || nilSrv.ItemsStored(time.Now()) != 0 {
		t.Fatal("nil server")
	}
	s = New(64)
	s.Free()
	s.Free()
	if s.NewClient(nal.NewConnection(), 0) != nil {
		t.Fatal("client on a freed server")
	}
}

// OnRelease runs exactly once whichever way a client goes: deleted by the
// caller, dropped by ClientsIO, or released by Server.Free.
func TestClientOnRelease(t *testing.T) {
	SetDefaultCache()
	pair := func(s *Server, flags uint32) (*Client, *nal.Connection, *nal.Selector, *int) {
		a, b := nal.NewConnection(), nal.NewConnection()
		sel := nal.NewSelector()
		if !a.CreatePair(b, 4096) || !a.AddToSelector(sel) {
			t.Fatal("pair")
		}
		c := s.NewClient(a, flags)
		n := new(int)
		c.OnRelease(func() { *n++ })
		return c, b, sel, n
	}
	s := New(100)
	defer s.Free()

	c, peer, sel, n := pair(s, 0)
	if !c.Delete() || c.Delete() || *n != 1 {
		t.Fatalf("Delete: released %d times", *n)
	}
	peer.Free()
	sel.Free()

	c, peer, sel, n = pair(s, ClientFlagInServer)
	peer.Free() // the peer goes away: ClientsIO drops the client
	for i := 0; i < 50 && *n == 0; i++ {
		sel.Select(20000, true)
		s.ClientsIO(time.Now())
	}
	if *n != 1 || !s.ClientsEmpty() || c.Plug() != nil {
		t.Fatalf("ClientsIO: released %d times, empty=%v", *n, s.ClientsEmpty())
	}
	sel.Free()

	s2 := New(100)
	c, peer, sel, n = pair(s2, ClientFlagInServer)
	if c.Flags() != ClientFlagInServer || c.Plug() == nil {
		t.Fatal("Flags/Plug")
	}
	s2.SetOperations(41)
	if s2.NumOperations() != 41 {
		t.Fatal("SetOperations")
	}
	s2.Free()
	if *n != 1 {
		t.Fatalf("Server.Free: released %d times", *n)
	}
	peer.Free()
	sel.Free()
}
