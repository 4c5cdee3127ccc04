// SPDX-License-Identifier: Apache-2.0

package upstream_test

import (
	"bytes"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// The near cache keeps what it reads (GETLIFE): a session another host
// added is asked of the server once, then answered here, blocking and
// started alike, until a removal elsewhere, whose notice drops it.
func TestNearKeepsWhatItReads(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	a, _ := nearOn(t, unixServer("s", ns.path))
	b, _ := nearOn(t, unixServer("s", ns.path))
	start := func(id string) *store.Call {
		done := make(chanDone, 1)
		if !b.Start(&store.Call{Op: proto.OpGet, ID: []byte(id), Done: done}) {
			t.Fatal("not started")
		}
		return <-done
	}
	for _, how := range []string{"blocking", "started"} {
		id := "elsewhere-" + how
		mustAdd(t, a, id)
		get := func() string {
			if how == "blocking" {
				return getFrom(t, b, id)
			}
			c := start(id)
			if c.Op != proto.OpGet || c.Left != 0 {
				t.Fatalf("the call came back as %v, left %v", c.Op, c.Left)
			}
			if c.Err != nil {
				return ""
			}
			return string(c.Res)
		}
		before := ns.s.Ops()
		if got := get(); got != "data-"+id {
			t.Fatalf("%s: first get %q", how, got)
		}
		if ns.s.Ops() != before+1 {
			t.Fatalf("%s: the first GET made %d requests", how, ns.s.Ops()-before)
		}
		hits := b.Stats().Hits
		for range 3 {
			if got := get(); got != "data-"+id {
				t.Fatalf("%s: get %q", how, got)
			}
		}
		if ns.s.Ops() != before+1 || b.Stats().Hits != hits+3 {
			t.Fatalf("%s: a session read once went to the server again (%d requests, %d hits)",
				how, ns.s.Ops()-before, b.Stats().Hits-hits)
		}
		if err := a.Remove(bg, []byte(id)); err != nil {
			t.Fatal(err)
		}
		if got := get(); got != "" {
			t.Fatalf("%s: after a removal elsewhere, GET answered %q", how, got)
		}
	}
}

// A copy read from the server lives no longer than the server said was
// left: here the server's clock stands 300 ms before the session's end
// (and stays there), so the server would answer it for ever, and the
// near cache must stop within 300 ms of asking.
func TestNearReadCopyLifetime(t *testing.T) {
	var frozen atomic.Int64 // UnixNano the server's clock stands at; 0: time.Now
	cfg := cache.Config{Now: func() time.Time {
		if f := frozen.Load(); f != 0 {
			return time.Unix(0, f)
		}
		return time.Now()
	}}
	ns := startNearServerWith(t, filepath.Join(t.TempDir(), "s"), true, cfg)
	n, u := nearOn(t, unixServer("s", ns.path))
	added := time.Now()
	if err := u.Add(bg, []byte("x"), []byte("dx"), time.Minute); err != nil {
		t.Fatal(err)
	}
	frozen.Store(added.Add(time.Minute - 300*time.Millisecond).UnixNano())
	asked := time.Now()
	if got := getFrom(t, n, "x"); got != "dx" {
		t.Fatalf("get: %q", got)
	}
	ops := ns.s.Ops()
	for i := 0; ; i++ {
		at := time.Now()
		if got := getFrom(t, n, "x"); got != "dx" {
			t.Fatalf("get: %q", got)
		}
		if ns.s.Ops() != ops {
			break // asked the server again: the copy ended
		}
		if at.Sub(asked) > 300*time.Millisecond {
			t.Fatalf("the near copy was answered %v after it was read, the server had 300 ms left", at.Sub(asked))
		}
		if i > 1e7 {
			t.Fatal("the copy never ended")
		}
	}
	if n.Stats().Hits == 0 {
		t.Fatal("the copy was never answered")
	}
}

// lifeServer is a fake server that announces bits; on a GETLIFE of a
// session it first sends a notice of that id on the subscription, when
// noticeFirst, then answers the data with a minute left. It counts the
// GETs and GETLIFEs it answers.
type lifeServer struct {
	path        string
	gets, lives atomic.Int64
	mu          sync.Mutex
	sub         net.Conn
	uid         uint32
}

func startLifeServer(t *testing.T, bits uint32, noticeFirst bool) *lifeServer {
	ls := &lifeServer{path: filepath.Join(t.TempDir(), "l")}
	ln, err := net.Listen("unix", ls.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	answer := func(c net.Conn, m *proto.Message, p []byte) {
		b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: p})
		c.Write(b)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := proto.NewReader(c, proto.WantRequests)
				for {
					m, err := rd.ReadMessage()
					if err != nil {
						return
					}
					switch {
					case m.Op == proto.OpGet && proto.IsFeaturesID(m.Payload):
						answer(c, m, proto.AppendFeatures(nil, bits))
					case m.Op == proto.OpSubscribe:
						ls.mu.Lock()
						ls.sub, ls.uid = c, 0
						ls.mu.Unlock()
						answer(c, m, []byte{0})
						c.Read(make([]byte, 1)) // until the client closes it
						return
					case m.Op == proto.OpGetLife:
						ls.lives.Add(1)
						id := append([]byte(nil), m.Payload...)
						if noticeFirst {
							ls.mu.Lock()
							ls.uid++
							b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: ls.uid, Op: proto.OpNotice, Payload: id})
							ls.sub.Write(b)
							ls.mu.Unlock()
						}
						p := make([]byte, proto.LifeSize)
						proto.PutLife(p, time.Minute)
						answer(c, m, append(p, "data-"+string(id)...))
					case m.Op == proto.OpGet:
						ls.gets.Add(1)
						answer(c, m, []byte("data-"+string(m.Payload)))
					default:
						answer(c, m, []byte{0})
					}
				}
			}()
		}
	}()
	return ls
}

// A read whose session was removed before its answer came (the notice
// already here) keeps nothing: the next GET asks the server again.
func TestNearReadRacingARemoval(t *testing.T) {
	ls := startLifeServer(t, proto.FeatureNotify|proto.FeatureGetLife, true)
	n, _ := nearOn(t, unixServer("l", ls.path))
	for i := range 3 {
		if got := getFrom(t, n, "x"); got != "data-x" {
			t.Fatalf("get: %q", got)
		}
		if ls.lives.Load() != int64(i+1) {
			t.Fatalf("GET %d: %d GETLIFEs reached the server", i+1, ls.lives.Load())
		}
	}
	if st := n.Stats(); st.Hits != 0 || st.Sessions != 0 {
		t.Fatalf("a read older than its removal's notice was kept: %+v", st)
	}
}

// A server that announces notices but not GETLIFE is never sent one: its
// GETs go as GETs, and nothing read is kept.
func TestNearReadWithoutGetLife(t *testing.T) {
	ls := startLifeServer(t, proto.FeatureNotify, false)
	n, _ := nearOn(t, unixServer("l", ls.path))
	for range 3 {
		if got := getFrom(t, n, "x"); got != "data-x" {
			t.Fatalf("get: %q", got)
		}
		done := make(chanDone, 1)
		n.Start(&store.Call{Op: proto.OpGet, ID: []byte("y"), Done: done})
		if c := <-done; c.Err != nil || string(c.Res) != "data-y" {
			t.Fatalf("started get: %q %v", c.Res, c.Err)
		}
	}
	if ls.lives.Load() != 0 || ls.gets.Load() != 6 || n.Stats().Hits != 0 {
		t.Fatalf("%d GETLIFEs, %d GETs, near %+v", ls.lives.Load(), ls.gets.Load(), n.Stats())
	}
}

// A session too large to come with its lifetime (one a Go program put
// in the server's cache: no ADD over the wire can carry it) is answered
// whole, through a GET, blocking and started.
func TestNearReadTooLarge(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	big := bytes.Repeat([]byte("b"), proto.MaxLifeData+1)
	if err := ns.c.Store().Add(bg, []byte("big"), big, time.Minute); err != nil {
		t.Fatal(err)
	}
	n, _ := nearOn(t, unixServer("s", ns.path))
	if got := getFrom(t, n, "big"); got != string(big) {
		t.Fatalf("blocking: %d bytes", len(got))
	}
	ch := make(chanDone, 1)
	n.Start(&store.Call{Op: proto.OpGet, ID: []byte("big"), Done: ch})
	if r := <-ch; r.Err != nil || !bytes.Equal(r.Res, big) || r.Op != proto.OpGet {
		t.Fatalf("started: %d bytes, %v, %v", len(r.Res), r.Err, r.Op)
	}
}
