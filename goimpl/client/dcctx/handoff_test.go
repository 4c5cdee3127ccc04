// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"os"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Handoff gives up one idle connection's socket, which then carries an
// exchange of the caller's own; the Ctx no longer holds it and dials anew.
func TestHandoff(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			s := fake.Start(t, nw, "", nil)
			// (the suite runs again over TransportNet, whose links stay)
			opt := *testOptions
			opt.Transport = TransportCaller
			c := newCtx(t, s.Target, 0, &opt)
			if h := c.Handoff(); h.FD != -1 {
				t.Fatalf("a Ctx without a connection handed over %d", h.FD)
			}
			if got := c.HasSession([]byte("a")); got != 0 {
				t.Fatalf("has = %d, want 0", got)
			}
			h := c.Handoff()
			// testOptions fixes the bound (IOTimeout): no room to adapt
			if h.FD < 0 || h.Bound <= 0 || h.Lifetime != DefaultDefaultLifetime ||
				h.Floor != testOptions.IOTimeout || h.Ceil != testOptions.IOTimeout {
				t.Fatalf("handoff %+v", h)
			}
			if fds := c.IdleFDs(); len(fds) != 0 {
				t.Fatalf("the Ctx still lists %v", fds)
			}
			f := os.NewFile(uintptr(h.FD), "handed")
			defer f.Close()
			req, _ := proto.AppendMessage(nil, &proto.Message{UID: 77, Op: proto.OpHave, Payload: []byte("a")})
			if _, err := f.Write(req); err != nil {
				t.Fatal(err)
			}
			m, err := proto.NewReader(f, proto.WantResponses).ReadMessage()
			if err != nil || m.UID != 77 || m.Op != proto.OpHave || len(m.Payload) != 1 {
				t.Fatalf("answer on the handed-over socket: %+v, %v", m, err)
			}
			if got := c.HasSession([]byte("b")); got != 0 || s.Accepts.Load() != 2 {
				t.Fatalf("has = %d after the handoff, %d accepts (want a new connection)", got, s.Accepts.Load())
			}
		})
	}
}

// A connection of Go's net package is never handed over.
func TestHandoffNetTransport(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, 0, &Options{Transport: TransportNet, IOTimeout: 20 * time.Second})
	c.HasSession([]byte("a"))
	if h := c.Handoff(); h.FD != -1 {
		t.Fatalf("handed over %d", h.FD)
	}
	if fds := c.IdleFDs(); len(fds) != 1 {
		t.Fatalf("idle %v, want the connection kept", fds)
	}
}

// Resent drops the idle connections and sends on a new one; Failed drops
// them too (a network failure) or puts the Ctx on probation (a timeout);
// Drops counts both.
func TestResentAndFailed(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, 0, nil)
	c.HasSession([]byte("a"))
	if a := newCtx(t, fake.Start(t, "unix", "", nil).Target, 0, &Options{}); a.HasSession([]byte("a")) != 0 {
		t.Fatal("has on an adaptive Ctx")
	} else if h := a.Handoff(); h.Floor != DefaultTimeout || h.Ceil != MaxTimeoutFactor*DefaultTimeout {
		t.Fatalf("adaptive handoff %+v", h)
	}
	d := c.Drops()
	if got := c.Resent().HasSession([]byte("b")); got != 0 || s.Accepts.Load() != 2 || c.Drops() == d {
		t.Fatalf("resent has = %d, %d accepts, drops %d -> %d", got, s.Accepts.Load(), d, c.Drops())
	}
	if _, ok := c.Resent().GetSession([]byte("b"), nil); ok {
		t.Fatal("resent get of an absent session succeeded")
	}
	d = c.Drops()
	c.Failed(false, 0)
	if fds := c.IdleFDs(); len(fds) != 0 || c.Drops() == d || c.Stalled() {
		t.Fatalf("after Failed(net): idle %v, drops %d -> %d, stalled %v", fds, d, c.Drops(), c.Stalled())
	}
	d = c.Drops()
	// the probe that Failed starts must not be answered before the test
	// looks: a silent server keeps the Ctx on probation
	s.SetMode(fake.ModeSilent)
	c.Failed(true, 100*time.Millisecond)
	if !c.Stalled() || c.Drops() == d {
		t.Fatalf("after Failed(timeout): stalled %v, drops %d -> %d", c.Stalled(), d, c.Drops())
	}
	if h := c.Handoff(); h.FD != -1 {
		t.Fatalf("a Ctx on probation handed over %d", h.FD)
	}
}
