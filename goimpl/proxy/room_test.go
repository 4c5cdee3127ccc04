// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

type echo struct{}

func (echo) Add(context.Context, []byte, []byte, time.Duration) error { return nil }
func (echo) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	return append(append(dst, "ok:"...), id...), nil
}
func (echo) Remove(context.Context, []byte) error                 { return store.ErrNotFound }
func (echo) Have(context.Context, []byte) error                   { return store.ErrNotFound }
func (echo) Take(context.Context, []byte, []byte) ([]byte, error) { return nil, store.ErrUnsupported }
func (echo) Close() error                                         { return nil }

type nolog struct{}

func (nolog) Printf(string, ...any) {}

// serveEcho serves an echo store (with Idle idle) and returns a
// connection to it.
func serveEcho(t *testing.T, idle time.Duration) net.Conn {
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Handler: &store.Handler{Store: echo{}}, Log: nolog{}, Idle: idle})
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	t.Cleanup(func() { p.Shutdown(ln, time.Second); <-done })
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, c net.Conn, rd *proto.Reader, id string) {
	t.Helper()
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpGet, Payload: []byte(id)})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	m, err := rd.ReadMessage()
	if err != nil || string(m.Payload) != "ok:"+id {
		t.Fatalf("GET %s: %v %q", id, err, m.Payload)
	}
}

// A kept connection's answers that have to wait for room (the
// application reads them late) are written once it reads, with Idle or
// without, and requests that come meanwhile are answered after them.
func TestKeptConnectionWaitsForRoom(t *testing.T) {
	for _, idle := range []time.Duration{0, time.Hour} {
		t.Run("idle="+idle.String(), func(t *testing.T) {
			c := serveEcho(t, idle)
			rd := proto.NewReader(c, proto.WantResponses)
			for i := 0; i < 3; i++ {
				get(t, c, rd, "a")
			}
			id := string(bytes.Repeat([]byte{'i'}, 64))
			const n = 20000 // about 1.6 MB of answers: far more than the socket holds
			var batch []byte
			for i := 0; i < n; i++ {
				batch, _ = proto.AppendMessage(batch, &proto.Message{UID: uint32(i), Op: proto.OpGet, Payload: []byte(id)})
			}
			werr := make(chan error, 1)
			go func() { _, err := c.Write(batch); werr <- err }()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for i := 0; i < n; i++ {
				m, err := rd.ReadMessage()
				if err != nil {
					t.Fatalf("answer %d of %d: %v", i, n, err)
				}
				if m.UID != uint32(i) || string(m.Payload) != "ok:"+id {
					t.Fatalf("answer %d: uid %d %q", i, m.UID, m.Payload)
				}
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			get(t, c, rd, "after")
		})
	}
}

// Connections whose answers wait for room stay in the loop, with no
// goroutine each, while the loop serves the others; each gets all its
// answers once it reads. With a store that starts calls and one that
// cannot.
func TestAnswersWaitingForRoomStayInTheLoop(t *testing.T) {
	for _, starts := range []bool{false, true} {
		t.Run("starts="+strconv.FormatBool(starts), func(t *testing.T) {
			var st store.Store = jitter{}
			if starts {
				st = &async{Store: jitter{}}
			}
			g0 := runtime.NumGoroutine()
			_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}})
			const conns, reqs = 10, 30 // 30 answers of 30 kB: more than a socket holds
			var stalled []net.Conn
			for i := 0; i < conns; i++ {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for k := 0; k < reqs; k++ {
					sendGet(t, c, uint32(k), "big"+strconv.Itoa(k))
				}
				stalled = append(stalled, c)
			}
			for i := 0; i < 5; i++ {
				dialGet(t, sock, "small"+strconv.Itoa(i)) // answered meanwhile
			}
			// The calls' goroutines end; nothing waits for the sockets.
			waittest.For(t, "no goroutine per connection", func() bool { return runtime.NumGoroutine()-g0 <= 8 })
			for i, c := range stalled {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				rd := proto.NewReader(c, proto.WantResponses)
				for k := 0; k < reqs; k++ {
					m, err := rd.ReadMessage()
					if err != nil {
						t.Fatalf("connection %d, answer %d: %v", i, k, err)
					}
					if want := "ok:big" + strconv.Itoa(k); m.UID != uint32(k) || len(m.Payload) < len(want) || string(m.Payload[:len(want)]) != want {
						t.Fatalf("connection %d, answer %d: uid %d %.20q", i, k, m.UID, m.Payload)
					}
				}
			}
		})
	}
}
