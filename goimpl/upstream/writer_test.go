// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	"github.com/distcache-go/distcache/goimpl/store"
)

// gateConn counts the writes to the server; while armed, the next write
// waits for release and then does what release says (write, or fail).
type gateConn struct {
	net.Conn
	writes  atomic.Int64
	armed   atomic.Bool
	entered chan struct{}
	release chan error
}

func (g *gateConn) Write(p []byte) (int, error) {
	g.writes.Add(1)
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		if err := <-g.release; err != nil {
			return 0, err
		}
	}
	return g.Conn.Write(p)
}

// gatedUpstream is an Upstream over one in-memory cache served by a fake
// server, its connection behind a gateConn.
func gatedUpstream(t *testing.T) (*Upstream, func() *gateConn) {
	t.Helper()
	h := &store.Handler{Store: cache.New(cache.Config{}).Store()}
	srv := prototest.Serve(t, filepath.Join(t.TempDir(), "s"), func(m *proto.Message) ([]byte, bool) {
		res, err := h.Handle(context.Background(), m, nil)
		return res, err == nil
	})
	var mu sync.Mutex
	var last *gateConn
	u, err := New(Options{
		Servers: []Server{{Name: "gated", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "unix", srv.Path)
			if err != nil {
				return nil, err
			}
			g := &gateConn{Conn: nc, entered: make(chan struct{}), release: make(chan error)}
			mu.Lock()
			last = g
			mu.Unlock()
			return g, nil
		}}},
		Timeout: 30 * time.Second, Retry: 20 * time.Millisecond, Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	current := func() *gateConn {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	waittest.For(t, "the server connection", func() bool {
		return u.Add(context.Background(), []byte("warm-up"), []byte("x"), time.Minute) == nil
	})
	return u, current
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}

// queued is the number of bytes waiting in the writer of u's connection.
func queued(u *Upstream) int {
	l := u.links[0]
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf)
}

// haveSize is the encoding of a HAVE of one of the ids below.
var haveSize = len(must(proto.AppendMessage(nil, &proto.Message{Op: proto.OpHave, Payload: []byte(id(0))})))

func id(i int) string { return fmt.Sprintf("session-%04d", i) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// haves starts n HAVEs of ids 0..n-1 with the first one's write held at
// the gate, and returns once the other n-1 are queued behind it.
func haves(t *testing.T, u *Upstream, g *gateConn, n int) (errs chan error) {
	t.Helper()
	g.armed.Store(true)
	errs = make(chan error, n)
	go func() { errs <- u.Have(context.Background(), []byte(id(0))) }()
	<-g.entered
	for i := 1; i < n; i++ {
		go func() { errs <- u.Have(context.Background(), []byte(id(i))) }()
	}
	waittest.For(t, "the requests to queue behind the held write", func() bool { return queued(u) == (n-1)*haveSize })
	return errs
}

// Requests that callers make while a write is under way go out together
// in the next write, and every one of them gets its answer.
func TestPipelinedRequestsShareAWrite(t *testing.T) {
	u, current := gatedUpstream(t)
	for i := 0; i < 40; i++ {
		if err := u.Add(context.Background(), []byte(id(i)), []byte("data"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	g := current()
	const n = 40
	errs := haves(t, u, g, n)
	before := g.writes.Load()
	g.release <- nil
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("HAVE: %v", err)
		}
	}
	if w := g.writes.Load() - before; w != 1 {
		t.Errorf("the %d queued requests took %d writes, want 1", n-1, w)
	}
}

// A failed write fails the requests queued behind it too, at once, and the
// connection is made again.
func TestFailedWriteFailsTheQueuedRequests(t *testing.T) {
	u, current := gatedUpstream(t)
	g := current()
	const n = 10
	errs := haves(t, u, g, n)
	g.release <- errors.New("injected write failure")
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrDisconnected) {
				t.Fatalf("request %d: %v, want ErrDisconnected", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d requests returned after the failed write", i, n)
		}
	}
	waittest.For(t, "a new connection", func() bool { return current() != g && u.Connected() })
	if err := u.Add(context.Background(), []byte("after"), []byte("x"), time.Minute); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
}

// A caller that keeps finding new requests queued behind its writes hands
// the writing over after maxRounds writes and returns with its answer
// while the next write is still under way; the rest still go out.
func TestWriterHandsOver(t *testing.T) {
	u, current := gatedUpstream(t)
	g := current()
	const rounds = maxRounds + 3
	answered := func(err error) bool { return err == nil || errors.Is(err, store.ErrNotFound) }
	first := make(chan error, 1)
	g.armed.Store(true)
	go func() { first <- u.Have(context.Background(), []byte(id(0))) }()
	others := make(chan error, rounds)
	for r := 1; r <= rounds; r++ {
		<-g.entered // write r is held
		if r == maxRounds+1 {
			// Not written by the first caller: it has handed over.
			select {
			case err := <-first:
				if !answered(err) {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the first caller did not return while write %d was held: it did not hand over", r)
			}
		}
		// One more request queues behind the held write, and the next
		// write is held in turn.
		go func() { others <- u.Have(context.Background(), []byte(id(r))) }()
		waittest.For(t, "a request to queue", func() bool { return queued(u) == haveSize })
		if r < rounds {
			g.armed.Store(true)
		}
		g.release <- nil
	}
	for i := 0; i < rounds; i++ {
		if err := <-others; !answered(err) {
			t.Fatalf("a later request: %v", err)
		}
	}
}
