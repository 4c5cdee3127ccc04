// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"bytes"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	addr := mustAddr(t, "IP:127.0.0.1:9", 512)
	a2 := ImportAddress(addr.Export())
	if a2 == nil || a2.String() != "IP:127.0.0.1:9" || !a2.CanConnect() || a2.DefBufferSize() != 512 || a2.ip != addr.ip || a2.port != 9 {
		t.Fatal("address round trip")
	}
	path := tempSock(t)
	la := mustAddr(t, "UNIX:"+path, 300)
	l := NewListener()
	if !l.Create(la) {
		t.Fatal("listener")
	}
	l2 := ImportListener(l.Export())
	defer l2.Free()
	a, b := NewConnection(), NewConnection()
	a.CreatePair(b, 100)
	a.Read().Write([]byte("unread"))
	a.Send().Write([]byte("unsent"))
	na := ImportConnection(a.Export())
	defer na.Free()
	defer b.Free()
	if na == nil || !bytes.Equal(na.Read().Data(), []byte("unread")) || na.Send().Size() != 100 || !na.IsEstablished() {
		t.Fatal("connection round trip")
	}
	sel := ImportSelector(NewSelectorFdPoll().Export())
	defer sel.Free()
	if !na.AddToSelector(sel) || !b.AddToSelector(sel) || !l2.AddToSelector(sel) {
		t.Fatal("rebind imported objects")
	}
	// the imported connection still sends its pending bytes
	pump(t, sel, []*Connection{na, b}, nil, func() bool { return b.Read().Used() == 6 })
	if string(b.Read().Data()) != "unsent" {
		t.Fatal("pending output lost")
	}
	// the imported listener accepts
	cl := NewConnection()
	defer cl.Free()
	if !cl.Create(la) {
		t.Fatal("connect")
	}
	got := acceptAll(t, sel, l2, nil, 1)
	if got[0].Read().Size() != 300 {
		t.Fatal("imported listener lost its buffer size")
	}
	got[0].Free()
	if ImportConnection(ConnectionState{Live: true, Kind: 9}) != nil || ImportListener(ListenerState{Live: true, Kind: 0}) != nil || ImportSelector(SelectorState{}) != nil {
		t.Fatal("inconsistent state accepted")
	}
}
