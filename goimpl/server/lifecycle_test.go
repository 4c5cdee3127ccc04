// SPDX-License-Identifier: Apache-2.0

package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// pair makes a connected socket pair on sel.
func pair(t *testing.T, sel *nal.Selector, size uint32) (*nal.Connection, *nal.Connection) {
	t.Helper()
	a, b := nal.NewConnection(), nal.NewConnection()
	if !a.CreatePair(b, size) || !a.AddToSelector(sel) || !b.AddToSelector(sel) {
		t.Fatal("socket pair")
	}
	return a, b
}

// ClientsIO answers at most one request per client per call, as the
// original does, even when several arrived together.
func TestClientsIOOneRequestPerRound(t *testing.T) {
	w := newWire(t)
	var raw []byte
	for uid := uint32(1); uid <= 3; uid++ {
		raw, _ = proto.AppendMessage(raw, &proto.Message{UID: uid, Op: proto.OpHave, Payload: exID})
	}
	w.peer.Send().Write(raw)
	deadline := time.Now().Add(10 * time.Second)
	for w.srv.NumOperations() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no request processed")
		}
		w.peer.IO()
		w.sel.Select(100000, true)
		w.srv.ClientsIO(time.Now())
	}
	for want := uint64(1); want <= 3; want++ {
		if got := w.srv.NumOperations(); got != want {
			t.Fatalf("%d operations after round %d", got, want)
		}
		w.srv.ClientsIO(time.Now())
	}
}

// Free deletes the IN_SERVER clients: their connections are closed unless
// NOFREE_CONN; a client the caller drives stays deletable.
func TestFreeDeletesInServerClients(t *testing.T) {
	SetDefaultCache()
	srv := New(64)
	sel := nal.NewSelector()
	defer sel.Free()
	a1, b1 := pair(t, sel, 4096)
	a2, b2 := pair(t, sel, 4096)
	a3, b3 := pair(t, sel, 4096)
	defer func() { b1.Free(); b2.Free(); b3.Free(); a2.Free(); a3.Free() }()
	srv.NewClient(a1, ClientFlagInServer)
	srv.NewClient(a2, ClientFlagInServer|ClientFlagNoFreeConn)
	own := srv.NewClient(a3, ClientFlagNoFreeConn)
	srv.Free()
	// b1 sees the close; a2 still works and b2 gets what it sends.
	deadline := time.Now().Add(10 * time.Second)
	closed := false
	for !closed && time.Now().Before(deadline) {
		sel.Select(100000, true)
		closed = !b1.IO()
	}
	if !closed {
		t.Fatal("connection of a deleted IN_SERVER client left open")
	}
	a2.Send().Write([]byte("still here"))
	for b2.Read().Used() < 10 && time.Now().Before(deadline) {
		a2.IO()
		sel.Select(100000, true)
		b2.IO()
	}
	if string(b2.Read().Data()) != "still here" {
		t.Fatal("NOFREE_CONN connection unusable after Free")
	}
	if !own.Delete() || own.Delete() {
		t.Fatal("caller-driven client: Delete after Free")
	}
	if own.Process(time.Now()) {
		t.Fatal("deleted client processed")
	}
}

// A cache that reports an entry longer than a message: the client is
// dropped without an answer and the request is not counted (E-17).
func TestOversizeGetDropsClient(t *testing.T) {
	SetCache(func(int) (Cache, error) { return bigCache{cache.New(cache.Config{})}, nil })
	defer SetDefaultCache()
	srv := New(64)
	sel := nal.NewSelector()
	a, b := pair(t, sel, 4096)
	defer func() { b.Free(); sel.Free(); srv.Free() }()
	srv.NewClient(a, ClientFlagInServer)
	req, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpGet, Payload: exID})
	b.Send().Write(req)
	deadline := time.Now().Add(10 * time.Second)
	for !srv.ClientsEmpty() && time.Now().Before(deadline) {
		b.IO()
		sel.Select(100000, true)
		srv.ClientsIO(time.Now())
	}
	if !srv.ClientsEmpty() || srv.NumOperations() != 0 {
		t.Fatalf("empty=%v operations=%d", srv.ClientsEmpty(), srv.NumOperations())
	}
	for b.IO() && time.Now().Before(deadline) {
		sel.Select(100000, true)
	}
	if b.Read().Used() != 0 {
		t.Fatalf("%d bytes answered", b.Read().Used())
	}
}

func TestNewWith(t *testing.T) {
	if NewWith(64, nil) != nil {
		t.Fatal("nil factory accepted")
	}
	if NewWith(10, NewDefaultCache) != nil {
		t.Fatal("default cache of 10 sessions accepted")
	}
	s := NewWith(10, func(n int) (Cache, error) { return cache.New(cache.Config{MaxSessions: n}), nil })
	if s == nil {
		t.Fatal("NewWith failed")
	}
	defer s.Free()
	for i := 0; i < 20; i++ {
		s.Cache().Add(t0, 60000, []byte(fmt.Sprintf("session-%04d", i)), []byte("d"))
	}
	if n := s.ItemsStored(t0); n != 10 {
		t.Fatalf("%d items stored, want the 10 the factory was asked for", n)
	}
}
