// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/internal/waittest"
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
	return startOn(t, o, "unix")
}

// startOn serves o on a new listener of network ("unix": a socket in a
// temporary directory, "tcp": loopback, port 0), and returns its address.
func startOn(t *testing.T, o Options, network string) (*Proxy, net.Listener, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "p")
	}
	ln, err := net.Listen(network, addr)
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
	return p, ln, ln.Addr().String()
}

// netOf is the network of an address startOn returned.
func netOf(addr string) string {
	if strings.Contains(addr, "/") {
		return "unix"
	}
	return "tcp"
}

func dialGet(t *testing.T, sock, id string) (net.Conn, *proto.Reader) {
	t.Helper()
	c, err := net.Dial(netOf(sock), sock)
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

// Local connections served by the loop cost no goroutine each: a
// hundred connections, each answered once and kept open, add none, on a
// unix socket or TCP, with Idle or without, with a store that starts its
// calls or one that cannot (whose calls' goroutines end with them).
func TestLoopConnectionsHaveNoGoroutine(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		for _, idle := range []time.Duration{0, time.Hour} {
			for _, starts := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/idle=%v/starts=%v", network, idle, starts), func(t *testing.T) {
					var st store.Store = echo{}
					if starts {
						st = &async{Store: echo{}}
					}
					g0 := runtime.NumGoroutine()
					_, _, addr := startOn(t, Options{Handler: &store.Handler{Store: st}, Idle: idle}, network)
					var conns []net.Conn
					for i := 0; i < 100; i++ {
						c, _ := dialGet(t, addr, "id"+strconv.Itoa(i))
						conns = append(conns, c)
					}
					waittest.For(t, "no goroutine per connection", func() bool { return runtime.NumGoroutine()-g0 <= 10 })
					for i := 0; i < 5; i++ {
						get(t, conns[i], proto.NewReader(conns[i], proto.WantResponses), "again")
					}
				})
			}
		}
	}
}

// Each TCP connection the loop accepts has what net's Accept sets:
// TCP_NODELAY (pipelined answers are not held back) and keep-alives
// (from the listener, or set on it when it was queued before).
func TestLoopTCPOptions(t *testing.T) {
	_, _, addr := startOn(t, Options{Handler: &store.Handler{Store: echo{}}}, "tcp")
	c, _ := dialGet(t, addr, "a")
	// The server's side of c is the connection whose local address is
	// c's remote one: find its descriptor in this process.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	want := c.LocalAddr().(*net.TCPAddr)
	found := false
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getpeername(fd)
		if a, ok := sa.(*syscall.SockaddrInet4); err != nil || !ok || a.Port != want.Port {
			continue
		}
		found = true
		nd, err1 := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		ka, err2 := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if err1 != nil || err2 != nil || nd == 0 || ka == 0 {
			t.Errorf("the accepted connection: TCP_NODELAY %d (%v), SO_KEEPALIVE %d (%v), want both set", nd, err1, ka, err2)
		}
	}
	if !found {
		t.Fatal("the accepted connection was not found")
	}
}

// With Idle, a connection that sends nothing, or half a request, for
// that long is closed, while one whose call takes longer than Idle is
// not: it is answered, and served on. With a store that starts its calls
// and one that cannot.
func TestLoopIdle(t *testing.T) {
	for _, starts := range []bool{false, true} {
		t.Run("starts="+strconv.FormatBool(starts), func(t *testing.T) {
			g := &gate{release: make(chan struct{})}
			var st store.Store = g
			held := g.waiters
			if starts {
				a := &async{Store: echo{}, release: make(chan struct{})}
				st, held = a, func() int { return int(a.held.Load()) }
				g.release = a.release
			}
			_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}, Idle: 50 * time.Millisecond})
			slow, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			sendGet(t, slow, 1, "slow")
			waittest.For(t, "the slow GET to reach the store", func() bool { return held() == 1 })
			quiet, _ := dialGet(t, sock, "q")
			half, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer half.Close()
			b, _ := proto.AppendMessage(nil, &proto.Message{UID: 2, Op: proto.OpGet, Payload: []byte("half")})
			half.Write(b[:len(b)-2])
			for _, c := range []net.Conn{quiet, half} {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if n, err := c.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("an idle connection: read %d, %v, want EOF", n, err)
				}
			}
			// Both were closed, each after Idle: the slow call has
			// taken longer than that.
			close(g.release)
			slow.SetDeadline(time.Now().Add(10 * time.Second))
			rd := proto.NewReader(slow, proto.WantResponses)
			if m, err := rd.ReadMessage(); err != nil || string(m.Payload) != "ok:slow" {
				t.Fatalf("the slow GET: %v %+v", err, m)
			}
			get(t, slow, rd, "next")
		})
	}
}

// Adopt serves a connection handed over in the loop, given before Serve
// or while it runs, the request bytes it comes with first.
func TestLoopAdopt(t *testing.T) {
	for _, before := range []bool{true, false} {
		t.Run("beforeServe="+strconv.FormatBool(before), func(t *testing.T) {
			g0 := runtime.NumGoroutine()
			p := New(Options{Handler: &store.Handler{Store: echo{}}, Log: nolog{}})
			var clients []net.Conn
			adopt := func() {
				for i := 0; i < 20; i++ {
					ours, theirs, err := unixPair()
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { theirs.Close() })
					req, _ := proto.AppendMessage(nil, &proto.Message{UID: 7, Op: proto.OpGet, Payload: []byte("pre" + strconv.Itoa(i))})
					p.Adopt(ours, req[:5]) // the predecessor read the first bytes
					theirs.Write(req[5:])
					clients = append(clients, theirs)
				}
			}
			if before {
				adopt()
			}
			ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "p"))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { p.Serve(ln); close(done) }()
			defer func() { p.Shutdown(ln, time.Second); <-done }()
			if !before {
				dialGet(t, ln.Addr().String(), "x") // the loop runs
				adopt()
			}
			for i, c := range clients {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				rd := proto.NewReader(c, proto.WantResponses)
				if m, err := rd.ReadMessage(); err != nil || m.UID != 7 || string(m.Payload) != "ok:pre"+strconv.Itoa(i) {
					t.Fatalf("adopted connection %d: %v %+v", i, err, m)
				}
				get(t, c, rd, "then")
			}
			waittest.For(t, "no goroutine per adopted connection", func() bool { return runtime.NumGoroutine()-g0 <= 8 })
		})
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
	waittest.For(t, "the slow GET to reach the store", func() bool { return g.waiters() == 1 })
	for i := 0; i < 5; i++ {
		dialGet(t, sock, "fast"+strconv.Itoa(i)) // a connection per GET
	}
	close(g.release)
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if m, err := proto.NewReader(slow, proto.WantResponses).ReadMessage(); err != nil || string(m.Payload) != "ok:slow-1" {
		t.Fatalf("the slow GET: %v %q", err, m.Payload)
	}
}

// With a store that cannot start calls, a request that comes in pieces,
// and requests pipelined on a new connection, are answered in order.
func TestLoopPartialAndPipelined(t *testing.T) {
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
	waittest.For(t, "the refusal to be logged", func() bool { return log.n() == 1 })
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
	waittest.For(t, "the slow GET to reach the store", func() bool { return g.waiters() == 1 })
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
	waittest.For(t, "the loops to end with their connections", func() bool { return runtime.NumGoroutine() <= g0 })
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

// The listener's own descriptor leaves the runtime's poller once the loop
// accepts on its duplicate: there it woke a thread waiting in the poller
// twice per connection, for nothing (dc_client, a connection per GET 2 ms
// apart: 6.6 sleeps of its threads and the server's per GET, 4.6 without).
func TestLoopListenerLeavesThePoller(t *testing.T) {
	if _, err := os.Stat("/proc/self/fdinfo"); err != nil {
		t.Skip("no /proc/self/fdinfo:", err)
	}
	_, ln, addr := startLoops(t, Options{Handler: &store.Handler{Store: &async{Store: echo{}}}})
	dialGet(t, addr, "id") // the loop is serving
	waittest.For(t, "the listener out of the runtime's poller", func() bool { return !evloop.InPoller(ln) })
}
