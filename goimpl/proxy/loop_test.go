// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// gate is a store whose GETs of "slow..." ids wait until release is
// closed (counting how many wait); other ids are answered at once.
type gate struct {
	echo
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (g *gate) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	if len(id) >= 4 && string(id[:4]) == "slow" {
		g.mu.Lock()
		g.waiting++
		g.mu.Unlock()
		<-g.release
	}
	return g.echo.Get(ctx, id, dst)
}

func (g *gate) waiters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func startLoops(t *testing.T, o Options) (*Proxy, net.Listener, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if o.Log == nil {
		o.Log = nolog{}
	}
	p := New(o)
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	t.Cleanup(func() { p.Shutdown(ln, time.Second); <-done })
	return p, ln, sock
}

func dialGet(t *testing.T, sock, id string) (net.Conn, *proto.Reader) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rd := proto.NewReader(c, proto.WantResponses)
	get(t, c, rd, id)
	return c, rd
}

func sendGet(t *testing.T, c net.Conn, uid uint32, id string) {
	t.Helper()
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: proto.OpGet, Payload: []byte(id)})
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// Local connections served by the event loops cost no goroutine each: a
// hundred connections, each answered once and kept open, add none.
func TestLoopConnectionsHaveNoGoroutine(t *testing.T) {
	startLoopsGoroutines := runtime.NumGoroutine()
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: echo{}}})
	for i := 0; i < 100; i++ {
		dialGet(t, sock, "id"+strconv.Itoa(i))
	}
	if n := runtime.NumGoroutine() - startLoopsGoroutines; n > 10 {
		t.Fatalf("100 local connections waiting between requests: %d more goroutines", n)
	}
}

// While a loop's goroutine waits for the store, another connection is
// accepted and answered: the listener has gone to another loop.
func TestLoopStoreCallHoldsUpNobody(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: g}})
	slow, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	sendGet(t, slow, 1, "slow-1")
	waitFor(t, "the slow GET to reach the store", func() bool { return g.waiters() == 1 })
	for i := 0; i < 5; i++ {
		dialGet(t, sock, "fast"+strconv.Itoa(i)) // a connection per GET
	}
	close(g.release)
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if m, err := proto.NewReader(slow, proto.WantResponses).ReadMessage(); err != nil || string(m.Payload) != "ok:slow-1" {
		t.Fatalf("the slow GET: %v %q", err, m.Payload)
	}
}

// With every loop waiting for the store, the loop holding the listener
// keeps it through its call: the connections that come meanwhile are
// answered once the calls return, none lost.
func TestLoopAllLoopsWaiting(t *testing.T) {
	old := maxLoops
	t.Cleanup(func() { maxLoops = old }) // after the proxy's (LIFO)
	maxLoops = 2
	g := &gate{release: make(chan struct{})}
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: g}})
	var slow []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sendGet(t, c, uint32(i), "slow-"+strconv.Itoa(i))
		waitFor(t, "a slow GET to reach the store", func() bool { return g.waiters() == i+1 })
		slow = append(slow, c)
	}
	late, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	sendGet(t, late, 9, "late")
	close(g.release)
	for i, c := range append(slow, late) {
		want := "ok:late"
		if i < 2 {
			want = "ok:slow-" + strconv.Itoa(i)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if m, err := proto.NewReader(c, proto.WantResponses).ReadMessage(); err != nil || string(m.Payload) != want {
			t.Fatalf("connection %d: %v %q, want %q", i, err, m.Payload, want)
		}
	}
}

// A request that comes in pieces, and requests pipelined on a new
// connection (the loop answers keptAfter, a goroutine the rest), are
// answered in order.
func TestLoopPartialAndPipelined(t *testing.T) {
	detached := make(chan struct{}, 10)
	testHookDetach = func() { detached <- struct{}{} }
	t.Cleanup(func() { testHookDetach = nil }) // after the proxy's (LIFO)
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: echo{}}})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	rd := proto.NewReader(c, proto.WantResponses)
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpGet, Payload: []byte("pieces")})
	c.Write(b[:5])
	select {
	case <-detached: // the loop read the first piece alone
	case <-time.After(5 * time.Second):
		t.Fatal("a connection with half a request stayed in its loop")
	}
	c.Write(b[5:])
	if m, err := rd.ReadMessage(); err != nil || string(m.Payload) != "ok:pieces" {
		t.Fatalf("a request in pieces: %v %q", err, m.Payload)
	}
	d, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var batch []byte
	for i := 0; i < 6; i++ {
		batch, _ = proto.AppendMessage(batch, &proto.Message{UID: uint32(i), Op: proto.OpGet, Payload: []byte("p" + strconv.Itoa(i))})
	}
	d.SetDeadline(time.Now().Add(5 * time.Second))
	d.Write(batch)
	rd = proto.NewReader(d, proto.WantResponses)
	for i := 0; i < 6; i++ {
		if m, err := rd.ReadMessage(); err != nil || m.UID != uint32(i) || string(m.Payload) != "ok:p"+strconv.Itoa(i) {
			t.Fatalf("pipelined answer %d: %v %+v", i, err, m)
		}
	}
	if len(detached) != 1 {
		t.Fatalf("the pipelining connection left its loop %d times, want 1", len(detached))
	}
}

// MaxClients counts the connections waiting in the loops.
func TestLoopMaxClients(t *testing.T) {
	log := new(countLog)
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: echo{}}, MaxClients: 2, Log: log})
	dialGet(t, sock, "a")
	dialGet(t, sock, "b")
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a third client with MaxClients 2: read %d bytes", n)
	}
	waitFor(t, "the refusal to be logged", func() bool { return log.n() == 1 })
}

type countLog struct {
	mu    sync.Mutex
	lines int
}

func (l *countLog) Printf(string, ...any) { l.mu.Lock(); l.lines++; l.mu.Unlock() }
func (l *countLog) n() int                { l.mu.Lock(); defer l.mu.Unlock(); return l.lines }

// A handover passes the connections waiting in the loops, each with
// nothing owed, and each is its client's.
func TestLoopHandOver(t *testing.T) {
	p, ln, sock := startLoops(t, Options{Handler: &store.Handler{Store: echo{}}})
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, _ := dialGet(t, sock, "x")
		conns = append(conns, c)
	}
	var mu sync.Mutex
	passed := 0
	p.HandOver(func(nc net.Conn, out, in []byte) error {
		if len(out) != 0 || len(in) != 0 {
			return errors.New("something owed")
		}
		mu.Lock()
		passed++
		mu.Unlock()
		_, err := nc.Write([]byte{'!'}) // to its client
		return err
	}, time.Second)
	p.Shutdown(ln, 5*time.Second)
	mu.Lock()
	n := passed
	mu.Unlock()
	if n != len(conns) {
		t.Fatalf("%d of %d connections passed on", n, len(conns))
	}
	for i, c := range conns {
		b := make([]byte, 1)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(b); err != nil || b[0] != '!' {
			t.Fatalf("connection %d: %v %q", i, err, b)
		}
	}
}

// A listener closed by anyone ends Serve, as it does without loops.
func TestLoopListenerClosed(t *testing.T) {
	p := New(Options{Handler: &store.Handler{Store: echo{}}, Log: nolog{}})
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	dialGet(t, ln.Addr().String(), "a")
	ln.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
	p.Shutdown(ln, time.Second)
}

// After its listener is closed by anyone, Serve returns and the loops
// end: the connections they had go on in goroutines of their own, and
// once those end nothing of the Proxy is left running.
func TestLoopListenerClosedLoopsEnd(t *testing.T) {
	g0 := runtime.NumGoroutine()
	g := &gate{release: make(chan struct{})}
	p := New(Options{Handler: &store.Handler{Store: g}, Log: nolog{}})
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	slow, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	sendGet(t, slow, 1, "slow")
	waitFor(t, "the slow GET to reach the store", func() bool { return g.waiters() == 1 })
	kept, rd := dialGet(t, ln.Addr().String(), "a") // waits in a second loop
	ln.Close()
	close(g.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
	get(t, kept, rd, "b")
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if m, err := proto.NewReader(slow, proto.WantResponses).ReadMessage(); err != nil || string(m.Payload) != "ok:slow" {
		t.Fatalf("the slow GET: %v %+v", err, m)
	}
	kept.Close()
	slow.Close()
	waitFor(t, "the loops to end with their connections", func() bool { return runtime.NumGoroutine() <= g0 })
}

// jitter answers like echo, after a random short wait for some ids (so
// that loops pass the listener and several are in calls at once), with a
// big answer for ids starting with "big".
type jitter struct{ echo }

func (jitter) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	if rand.Intn(3) == 0 {
		time.Sleep(time.Duration(rand.Intn(300)) * time.Microsecond)
	}
	dst = append(append(dst, "ok:"...), id...)
	if len(id) > 3 && string(id[:3]) == "big" {
		for len(dst) < 30000 {
			dst = append(dst, '.')
		}
	}
	return dst, nil
}

// Connections per request from many clients at once, with requests one
// at a time, pipelined, in pieces, and big answers left unread until all
// are sent, while store calls take turns: each connection gets the
// answers to its own requests, in order.
func TestLoopOwnAnswersInOrder(t *testing.T) {
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: jitter{}}})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for k := 0; k < 60; k++ {
				if err := oneConn(r, sock, fmt.Sprintf("w%d-%d", w, k)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// oneConn opens a connection, sends it 1-6 GETs in one of the ways
// above and checks the answers.
func oneConn(r *rand.Rand, sock, name string) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rd := proto.NewReader(c, proto.WantResponses)
	n := 1 + r.Intn(6)
	var ids []string
	var reqs [][]byte
	var uids []uint32
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", name, i)
		if r.Intn(5) == 0 {
			id = "big" + id
		}
		uids = append(uids, uint32(r.Int31()))
		b, _ := proto.AppendMessage(nil, &proto.Message{UID: uids[i], Op: proto.OpGet, Payload: []byte(id)})
		ids = append(ids, id)
		reqs = append(reqs, b)
	}
	check := func(i int) error {
		m, err := rd.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: answer %d: %v", name, i, err)
		}
		if m.UID != uids[i] {
			return fmt.Errorf("%s: answer %d has uid %d, want %d", name, i, m.UID, uids[i])
		}
		if got := string(m.Payload); len(got) < 3+len(ids[i]) || got[:3+len(ids[i])] != "ok:"+ids[i] {
			return fmt.Errorf("%s: answer %d is %.40q, want ok:%s", name, i, got, ids[i])
		}
		return nil
	}
	switch r.Intn(4) {
	case 0: // one after the other
		for i := range reqs {
			c.Write(reqs[i])
			if err := check(i); err != nil {
				return err
			}
		}
	case 1: // all in one write, then read
		var all []byte
		for _, b := range reqs {
			all = append(all, b...)
		}
		c.Write(all)
		for i := range reqs {
			if err := check(i); err != nil {
				return err
			}
		}
	case 2: // byte pieces
		var all []byte
		for _, b := range reqs {
			all = append(all, b...)
		}
		r2 := rand.New(rand.NewSource(r.Int63()))
		go func() {
			for len(all) > 0 {
				k := min(len(all), 1+r2.Intn(40))
				c.Write(all[:k])
				all = all[k:]
				if r2.Intn(3) == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
		for i := range reqs {
			if err := check(i); err != nil {
				return err
			}
		}
	case 3: // write all one by one without reading, then read
		for _, b := range reqs {
			c.Write(b)
		}
		for i := range reqs {
			if err := check(i); err != nil {
				return err
			}
		}
	}
	return nil
}
