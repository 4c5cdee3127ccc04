// SPDX-License-Identifier: Apache-2.0

package dc

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/distcache-go/distcache/goimpl/client/dcctx"
	gonal "github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	gserver "github.com/distcache-go/distcache/goimpl/server"
)

// miniServer answers every request on a unix socket with 0x01 (not found).
func miniServer(t *testing.T) string {
	return prototest.Serve(t, filepath.Join(t.TempDir(), "s"), prototest.Miss).Addr()
}

// The engine side of DC_CTX_new: PERSISTENT never connects early (the
// front checked), DISTCACHE_CTX picks the transport, and the fork handler
// sees the pooled descriptors of every open context until it is freed.
func TestCtxExport(t *testing.T) {
	if c := newCtx("UNIX:/nonexistent/dc.sock", dcctx.FlagPersistent); c == nil {
		t.Fatal("PERSISTENT context to a missing socket: the engine must not connect in DC_CTX_new")
	} else {
		freeCtx(c)
	}
	if newCtx("IP:9001", 0) != nil || newCtx("FD:0", 0) != nil {
		t.Fatal("the engine took a target no client can use")
	}
	for _, env := range []string{"", "client"} {
		t.Setenv("DISTCACHE_CTX", env)
		want := dcctx.TransportCaller
		if env == "client" {
			want = dcctx.TransportNet
		}
		c := newCtx(miniServer(t), dcctx.FlagPersistent)
		if c == nil {
			t.Fatal("newCtx")
		}
		if got := c.Options().Transport; got != want {
			t.Fatalf("DISTCACHE_CTX=%q: transport %d, want %d", env, got, want)
		}
		if c.HasSession([]byte("x")) != 0 {
			t.Fatal("has through the engine context")
		}
		fds := c.IdleFDs()
		if len(fds) != 1 || !slices.Contains(pooledFDs(), fds[0]) {
			t.Fatalf("pooled fds %v, fork list %v", fds, pooledFDs())
		}
		freeCtx(c)
		if slices.Contains(pooledFDs(), fds[0]) {
			t.Fatal("a freed context's descriptor is still listed for the fork")
		}
	}
}

// A client the engine deletes by itself (ClientsIO after the peer left)
// is handed to the front to reap; one the front deletes is not.
func TestServerReap(t *testing.T) {
	d, ok := newDefCache(100)
	if !ok {
		t.Fatal("newDefCache")
	}
	s := newServer(d)
	defer s.s.Free()
	pair := func(flags uint32, front *byte) (*sclient, *gonal.Connection, *gonal.Selector) {
		a, b := gonal.NewConnection(), gonal.NewConnection()
		sel := gonal.NewSelector()
		if !a.CreatePair(b, 4096) || !a.AddToSelector(sel) {
			t.Fatal("pair")
		}
		return s.addClient(s.s.NewClient(a, flags|gserver.ClientFlagNoFreeConn), nil, unsafe.Pointer(front)), b, sel
	}
	reaped := func() []unsafe.Pointer {
		var out []unsafe.Pointer
		for h := dce_DC_SERVER_reap(); h != nil; h = dce_DC_SERVER_reap() {
			out = append(out, h)
		}
		return out
	}
	reaped()

	h1, h2 := new(byte), new(byte)
	cl, peer, sel := pair(0, h1)
	cl.byFront = true
	if !cl.c.Delete() || len(reaped()) != 0 {
		t.Fatal("a client the front deleted was handed back to it")
	}
	peer.Free()
	sel.Free()

	_, peer, sel = pair(gserver.ClientFlagInServer, h2)
	peer.Free()
	var got []unsafe.Pointer
	for deadline := time.Now().Add(5 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		sel.Select(20000, true)
		s.s.ClientsIO(time.Now())
		got = reaped()
	}
	if len(got) != 1 || got[0] != unsafe.Pointer(h2) {
		t.Fatalf("reaped %v, want the client's handle %p", got, h2)
	}
	sel.Free()
}
