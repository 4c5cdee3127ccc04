// SPDX-License-Identifier: Apache-2.0

package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// testPoller is an evloop.Poller: one Loop, run by its own goroutine,
// that says when a Handler of it is being called.
type testPoller struct {
	l      *evloop.Loop
	inLoop atomic.Bool // a polled socket's Handler is running
	stop   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	reqs   []pollReq
	polled []evloop.Polled
}

type pollReq struct {
	rc syscall.RawConn
	h  evloop.Polled
}

func newTestPoller(t *testing.T) *testPoller {
	l, err := evloop.New()
	if err != nil {
		t.Fatal(err)
	}
	p := &testPoller{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	t.Cleanup(p.end)
	return p
}

func (p *testPoller) Attach(_ any, rc syscall.RawConn, h evloop.Polled) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, pollReq{rc, h})
	p.l.Wake()
	return true
}

type flagged struct {
	p *testPoller
	h evloop.Polled
}

func (f flagged) Ready() {
	f.p.inLoop.Store(true)
	f.h.Ready()
	f.p.inLoop.Store(false)
}

func (p *testPoller) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		p.l.Wait(time.Time{})
		p.mu.Lock()
		reqs := p.reqs
		p.reqs = nil
		p.mu.Unlock()
		for _, r := range reqs {
			var werr error
			if err := r.rc.Control(func(fd uintptr) { werr = p.l.Watch(int(fd), flagged{p, r.h}) }); err != nil || werr != nil {
				r.h.Unpolled()
				continue
			}
			p.mu.Lock()
			p.polled = append(p.polled, r.h)
			p.mu.Unlock()
		}
	}
}

// end stops the loop and gives the sockets back (Unpolled), as the
// proxy's loop does when it ends.
func (p *testPoller) end() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.l.Wake()
	<-p.done
	p.l.Close()
	for _, h := range p.polled {
		h.Unpolled()
	}
}

// doneCall records how a started call completed.
type doneCall struct {
	c      store.Call
	p      *testPoller
	onLoop bool
	done   chan struct{}
}

func (d *doneCall) Complete(c *store.Call) {
	d.onLoop = d.p.inLoop.Load()
	close(d.done)
}

func startGet(u *Upstream, p *testPoller, id string) *doneCall {
	d := &doneCall{p: p, done: make(chan struct{})}
	d.c = store.Call{Op: proto.OpGet, ID: []byte(id), Done: d}
	if !u.Start(&d.c) {
		panic("Start refused a GET")
	}
	return d
}

func (d *doneCall) wait(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a started call never completed")
	}
}

// With a poller, the connection's answers are read by the poller's loop,
// which delivers them: a started request's completion runs there, with
// no goroutine woken for it. When the poller ends (Unpolled), readLoop
// and the callers read again.
func TestPolledConnectionReadByTheLoop(t *testing.T) {
	path, _, _ := holdServer(t)
	u := openHold(t, path, 30*time.Second)
	l := u.links[0]
	p := newTestPoller(t)
	u.Poll(p)
	waittest.For(t, "the poller to have the connection", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.polled && l.reading && l.readerCall == nil
	})
	for i := 0; i < 50; i++ {
		d := startGet(u, p, "x")
		d.wait(t)
		if !errors.Is(d.c.Err, store.ErrNotFound) {
			t.Fatalf("GET %d: %v, want ErrNotFound", i, d.c.Err)
		}
		if !d.onLoop {
			t.Fatalf("GET %d completed outside the poller's loop", i)
		}
	}
	// A caller that waits is answered by the loop too.
	if err := u.Have(context.Background(), []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Have while polled: %v", err)
	}
	u.Poll(nil)
	p.end()
	l.mu.Lock()
	polled := l.polled
	l.mu.Unlock()
	if polled {
		t.Fatal("still polled after Unpolled")
	}
	for i := 0; i < 5; i++ {
		if err := u.Have(context.Background(), []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Have %d after the poller ended: %v", i, err)
		}
	}
}

// Poll takes the connection from readLoop watching it idle, and the
// loop notices the server's close without a request.
func TestPolledIdleConnection(t *testing.T) {
	path, _, _ := holdServer(t)
	u := openHold(t, path, 0)
	l := u.links[0]
	waittest.For(t, "readLoop to read the idle connection", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.reading && l.readerCall == nil
	})
	p := newTestPoller(t)
	u.Poll(p)
	waittest.For(t, "the poller to have the connection", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.polled
	})
	d := startGet(u, p, "x")
	d.wait(t)
	if !errors.Is(d.c.Err, store.ErrNotFound) || !d.onLoop {
		t.Fatalf("GET: %v, on the loop %v", d.c.Err, d.onLoop)
	}
	l.mu.Lock()
	nc := l.nc
	l.mu.Unlock()
	nc.(interface{ CloseWrite() error }).CloseWrite()
	waittest.For(t, "the connection's end noticed", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.nc != nc
	})
	// The next connection is the poller's from the start.
	waittest.For(t, "the new connection polled", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.nc != nil && l.polled
	})
	d = startGet(u, p, "x")
	d.wait(t)
	if !errors.Is(d.c.Err, store.ErrNotFound) || !d.onLoop {
		t.Fatalf("GET on the new connection: %v, on the loop %v", d.c.Err, d.onLoop)
	}
}

// A started request whose answer does not come fails with
// ErrDisconnected after the timeout (the watchdog completes it), and one
// that finds no server completes at once with ErrNoServer.
func TestStartedRequestTimesOut(t *testing.T) {
	path, held, _ := holdServer(t)
	u := openHold(t, path, 50*time.Millisecond)
	p := newTestPoller(t)
	u.Poll(p)
	d := startGet(u, p, "hold")
	<-held
	d.wait(t)
	if !errors.Is(d.c.Err, ErrDisconnected) {
		t.Fatalf("a held GET: %v, want ErrDisconnected", d.c.Err)
	}
	u.Close()
	d = startGet(u, p, "x")
	d.wait(t)
	if !errors.Is(d.c.Err, ErrNoServer) {
		t.Fatalf("a GET after Close: %v, want ErrNoServer", d.c.Err)
	}
}

// A started request never waits for room in the server's socket: with a
// server that reads nothing yet, ADDs far beyond what the socket holds
// are all started at once (the rest is written by a goroutine), and all
// answered once the server reads.
func TestStartNeverWaitsForRoom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		<-release
		rd := proto.NewReader(nc, proto.WantRequests)
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				return
			}
			b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte{proto.ResultOK}})
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	}()
	u, err := New(Options{
		Servers: []Server{{Name: "slow reader", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}},
		Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if !u.WaitTried(5 * time.Second) {
		t.Fatal("no connection")
	}
	p := newTestPoller(t)
	u.Poll(p)
	data := bytes.Repeat([]byte{'d'}, 30000)
	const n = 200 // 6 MB
	calls := make([]*doneCall, n)
	started := make(chan struct{})
	go func() {
		for i := range calls {
			d := &doneCall{p: p, done: make(chan struct{})}
			d.c = store.Call{Op: proto.OpAdd, ID: []byte(fmt.Sprint("id-", i)), Data: data, TTL: time.Minute, Done: d}
			if !u.Start(&d.c) {
				panic("Start refused an ADD")
			}
			calls[i] = d
		}
		close(started)
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("Start waited for room in the server's socket")
	}
	close(release)
	for i, d := range calls {
		d.wait(t)
		if d.c.Err != nil {
			t.Fatalf("ADD %d: %v", i, d.c.Err)
		}
	}
}

// countCall counts the completions of started calls.
type countCall struct{ n *atomic.Int64 }

func (d countCall) Complete(*store.Call) { d.n.Add(1) }

// Start picks its server once: a server that goes out of use while a
// request is being started (here its state flips between up and on
// probation under the starter's feet, as a request that times out and
// the probe answered after it make it) fails that request with
// ErrNoServer or serves it, and never leaves Start without a server.
// Before, Start asked twice, and a server gone between the two asks was a
// nil one (a panic).
func TestStartWhileTheServerGoesAway(t *testing.T) {
	path, _, _ := holdServer(t)
	u := openHold(t, path, 0)
	l := u.links[0]
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for {
			select {
			case <-stop:
				l.state.Store(stateUp)
				return
			default:
			}
			l.state.CompareAndSwap(stateUp, stateProbing)
			l.state.CompareAndSwap(stateProbing, stateUp)
		}
	}()
	var n atomic.Int64
	const calls = 100000
	for i := 0; i < calls; i++ {
		sc := &store.Call{Op: proto.OpHave, ID: []byte("x"), Done: countCall{&n}}
		if !u.Start(sc) {
			t.Fatal("Start refused a HAVE")
		}
	}
	close(stop)
	<-flipped
	waittest.For(t, "every started call's completion", func() bool { return n.Load() == calls })
}

// Requests started with a Batch (an event loop's round) are written when
// the round ends, all in one write: nothing is in the server's socket
// once Start returns, one end-of-round function is asked for however
// many requests the round starts, and after it the server's one read
// holds all of them. Each is answered.
func TestStartedRoundIsOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u, err := New(Options{
		Servers: []Server{{Name: "batch", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}},
		Log: nopLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !u.WaitTried(5 * time.Second) {
		t.Fatal("no connection")
	}
	var atEnd []func()
	batch := func(f func()) { atEnd = append(atEnd, f) }
	const n = 5
	calls := make([]*doneCall, n)
	for i := range calls {
		d := &doneCall{p: &testPoller{}, done: make(chan struct{})}
		d.c = store.Call{Op: proto.OpGet, ID: []byte(fmt.Sprint("id-", i)), Done: d, Batch: batch}
		if !u.Start(&d.c) {
			t.Fatal("Start refused a GET")
		}
		calls[i] = d
	}
	// A write to a unix socket is in its peer's queue when it returns.
	buf := make([]byte, 64<<10)
	srv.SetReadDeadline(time.Now())
	if k, err := srv.Read(buf); k > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server has %d bytes (%v) before the round ended, want none", k, err)
	}
	if len(atEnd) != 1 {
		t.Fatalf("%d functions left to the round's end, want 1", len(atEnd))
	}
	atEnd[0]()
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := srv.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rd := proto.NewReader(bytes.NewReader(buf[:k]), proto.WantRequests)
	var out []byte
	for i := 0; i < n; i++ {
		m, err := rd.ReadMessage()
		if err != nil {
			t.Fatalf("the server's first read holds %d requests (%v), want %d", i, err, n)
		}
		out, _ = proto.AppendMessage(out, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: []byte{proto.ResultNotOK}})
	}
	if _, err := srv.Write(out); err != nil {
		t.Fatal(err)
	}
	for i, d := range calls {
		d.wait(t)
		if !errors.Is(d.c.Err, store.ErrNotFound) {
			t.Fatalf("GET %d: %v, want ErrNotFound", i, d.c.Err)
		}
	}
}
