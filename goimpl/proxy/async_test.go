// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"context"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/internal/fdtest"
	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// async is a store.Async over a blocking store: each started call is
// carried out by a goroutine of its own (or at once, inline), as an
// upstream's answer comes from whoever reads it. GETs of ids starting
// with "slow" wait until release is closed, when it is set.
type async struct {
	store.Store
	inline  bool
	release chan struct{}
	starts  atomic.Int64
	held    atomic.Int64
}

func (a *async) Start(c *store.Call) bool {
	a.starts.Add(1)
	// The ids and data are the store's only until Start returns.
	id, data := append([]byte(nil), c.ID...), append([]byte(nil), c.Data...)
	run := func() {
		ctx := context.Background()
		switch c.Op {
		case proto.OpAdd:
			c.Err = a.Store.Add(ctx, id, data, c.TTL)
		case proto.OpGet:
			if a.release != nil && len(id) >= 4 && string(id[:4]) == "slow" {
				a.held.Add(1)
				<-a.release
			}
			c.Res, c.Err = a.Store.Get(ctx, id, c.Dst)
		case proto.OpRemove:
			c.Err = a.Store.Remove(ctx, id)
		default:
			c.Err = a.Store.Have(ctx, id)
		}
		c.Done.Complete(c)
	}
	if a.inline {
		run()
	} else {
		go run()
	}
	return true
}

// With a store that starts calls, kept connections stay in the loop for
// good, with no goroutine of their own, and every request is started,
// none answered by a blocking call.
func TestAsyncKeptConnectionsStayInTheLoop(t *testing.T) {
	st := &async{Store: echo{}}
	g0 := runtime.NumGoroutine()
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}})
	type conn struct {
		c  net.Conn
		rd *proto.Reader
	}
	var conns []conn
	for i := 0; i < 20; i++ {
		c, rd := dialGet(t, sock, "first")
		conns = append(conns, conn{c, rd})
	}
	for k := 0; k < 10; k++ {
		for i, c := range conns {
			get(t, c.c, c.rd, fmt.Sprintf("c%d-%d", i, k))
		}
	}
	if n := st.starts.Load(); n != 20*11 {
		t.Errorf("%d calls started, want %d", n, 20*11)
	}
	waittest.For(t, "the calls' goroutines to end", func() bool { return runtime.NumGoroutine()-g0 <= 8 })
}

// Connections per request and kept ones, requests one at a time,
// pipelined, in pieces, and answers too big for the socket, with calls
// completed by other goroutines after random waits or at once: each
// connection gets the answers to its own requests, in order.
func TestAsyncOwnAnswersInOrder(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run("inline="+strconv.FormatBool(inline), func(t *testing.T) {
			_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: &async{Store: jitter{}, inline: inline}}})
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
		})
	}
}

// A malformed request closes its own connection, logged, while another
// connection of the loop, with its call in flight, is answered.
func TestAsyncMalformedClosesOnlyItsConnection(t *testing.T) {
	log := new(countLog)
	st := &async{Store: echo{}, release: make(chan struct{})}
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}, Log: log})
	slow := heldGet(t, sock, st, 7, "slow-1")
	bad, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write(bytes.Repeat([]byte{0xff}, 64)) // no distcache frame
	bad.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := bad.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a request of an unknown operation was answered (%d bytes)", n)
	}
	close(st.release)
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if m, err := proto.NewReader(slow, proto.WantResponses).ReadMessage(); err != nil || m.UID != 7 || string(m.Payload) != "ok:slow-1" {
		t.Fatalf("the slow GET: %v %+v", err, m)
	}
	if n := log.n(); n != 1 {
		t.Errorf("%d lines logged, want 1", n)
	}
}

// Requests the store cannot start (TAKE, and the feature probe, which
// may ask the server) are answered by Handle from a goroutine, and the
// connection goes on in the loop.
func TestAsyncBlockingRequests(t *testing.T) {
	st := &async{Store: echo{}}
	h := &store.Handler{Store: st, Features: func() uint32 { return proto.FeatureTake }}
	_, _, sock := startLoops(t, Options{Handler: h})
	c, rd := dialGet(t, sock, "a")
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 2, Op: proto.OpTake, Payload: []byte("t")})
	c.Write(b)
	if m, err := rd.ReadMessage(); err != nil || m.UID != 2 || string(m.Payload) != "\x01" {
		t.Fatalf("TAKE: %v %+v, want a miss (echo cannot take)", err, m)
	}
	b, _ = proto.AppendMessage(nil, &proto.Message{UID: 3, Op: proto.OpGet, Payload: proto.FeaturesID})
	c.Write(b)
	if m, err := rd.ReadMessage(); err != nil || m.UID != 3 || proto.ParseFeatures(m.Payload)&proto.FeatureTake == 0 {
		t.Fatalf("the feature probe: %v %+v", err, m)
	}
	get(t, c, rd, "b")
	if n := st.starts.Load(); n != 2 {
		t.Errorf("%d calls started, want the 2 GETs", n)
	}
}

// A handover passes every connection of the loop, the one whose call is
// in flight once it is answered, each with nothing owed.
func TestAsyncHandOverWaitsForTheCall(t *testing.T) {
	st := &async{Store: echo{}, release: make(chan struct{})}
	p, ln, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}})
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, _ := dialGet(t, sock, "x")
		conns = append(conns, c)
	}
	slow := heldGet(t, sock, st, 5, "slow")
	var passed atomic.Int64
	p.HandOver(func(nc net.Conn, out, in []byte) error {
		if len(out) != 0 || len(in) != 0 {
			return fmt.Errorf("something owed")
		}
		passed.Add(1)
		_, err := nc.Write([]byte{'!'})
		return err
	}, time.Second)
	done := make(chan struct{})
	go func() { p.Shutdown(ln, 10*time.Second); close(done) }()
	waittest.For(t, "the idle connections passed on", func() bool { return passed.Load() == 3 })
	close(st.release)
	<-done
	if n := passed.Load(); n != 4 {
		t.Fatalf("%d of 4 connections passed on", n)
	}
	// The slow connection: its answer, then the successor's byte.
	want, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: 5, Op: proto.OpGet, Payload: []byte("ok:slow")})
	got := make([]byte, len(want)+1)
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(slow, got); err != nil || !bytes.Equal(got, append(want, '!')) {
		t.Fatalf("the slow connection: %v %q, want its answer then the successor's", err, got)
	}
	for i, c := range conns {
		b := make([]byte, 1)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(b); err != nil || b[0] != '!' {
			t.Fatalf("connection %d: %v %q", i, err, b)
		}
	}
}

// MaxClients counts the connections of the loop.
func TestAsyncMaxClients(t *testing.T) {
	log := new(countLog)
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: &async{Store: echo{}}}, MaxClients: 2, Log: log})
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

// polledSock counts its Handler's calls.
type polledSock struct {
	ready, unpolled atomic.Int64
	fd              int
}

func (s *polledSock) Ready() {
	s.ready.Add(1)
	var b [64]byte
	for {
		if n, err := syscall.Read(s.fd, b[:]); n <= 0 || err != nil {
			return
		}
	}
}
func (s *polledSock) Unpolled() { s.unpolled.Add(1) }

// Options.Poll is given the loop while it runs, and nil when it ends; a
// socket attached to it has its Handler called by the loop when it is
// readable, and is told Unpolled when the loop ends.
func TestAsyncPoller(t *testing.T) {
	var mu sync.Mutex
	var polls []evloop.Poller
	poll := pollable(func(p evloop.Poller) {
		mu.Lock()
		polls = append(polls, p)
		mu.Unlock()
	})
	p, ln, sock := startLoops(t, Options{Handler: &store.Handler{Store: &async{Store: echo{}}}, Poll: poll})
	dialGet(t, sock, "a")
	mu.Lock()
	if len(polls) != 1 || polls[0] == nil {
		mu.Unlock()
		t.Fatalf("Poll calls while serving: %v", polls)
	}
	pl := polls[0]
	mu.Unlock()
	ua, ub, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	defer ub.Close()
	rc, _ := ub.(syscall.Conn).SyscallConn()
	s := new(polledSock)
	rc.Control(func(fd uintptr) { s.fd = int(fd) })
	if !pl.Attach(s, rc, s) {
		t.Fatal("Attach refused while the loop runs")
	}
	ua.Write([]byte("hello"))
	waittest.For(t, "the loop to call the attached socket's Handler", func() bool { return s.ready.Load() >= 1 })
	p.Shutdown(ln, time.Second)
	waittest.For(t, "Unpolled at the loop's end", func() bool { return s.unpolled.Load() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(polls) != 2 || polls[1] != nil {
		t.Fatalf("Poll calls after the end: %v, want the loop then nil", polls)
	}
	if pl.Attach(s, rc, s) {
		t.Error("Attach accepted after the loop ended")
	}
}

type pollable func(evloop.Poller)

func (f pollable) Poll(p evloop.Poller) { f(p) }
func (pollable) Polled() bool           { return true }

func unixPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var cs [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		cs[i] = c
	}
	return cs[0], cs[1], nil
}

// A call that completes as a Shutdown begins, after the loop looked at
// its connections (the completion saw no Shutdown, then gave the
// connection back idle), still has its connection handed over at once:
// the loop looks at the idle ones again. Before, the connection stayed
// in the loop, idle and never read, until Shutdown's wait ran out.
func TestAsyncHandOverOfACallCompletingAsShutdownBegins(t *testing.T) {
	st := &async{Store: echo{}, release: make(chan struct{})}
	p, ln, sock := startLoops(t, Options{Handler: &store.Handler{Store: st}})
	dialGet(t, sock, "witness") // an idle connection, handed over first
	slow := heldGet(t, sock, st, 5, "slow")
	var passed atomic.Int64
	p.HandOver(func(nc net.Conn, out, in []byte) error {
		passed.Add(1)
		_, err := nc.Write([]byte{'!'})
		return err
	}, time.Second)
	done := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			go func() { p.Shutdown(ln, time.Minute); close(done) }()
			// Until the loop has handed the idle witness over: it has
			// looked at its connections, and passed this one by.
			for end := time.Now().Add(20 * time.Second); passed.Load() < 1 && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
		})
	}
	testHookIdle.Store(&hook)
	t.Cleanup(func() { testHookIdle.Store(nil) })
	close(st.release)
	waittest.For(t, "the slow connection handed over", func() bool { return passed.Load() == 2 })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return once every connection was handed over")
	}
	want, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: 5, Op: proto.OpGet, Payload: []byte("ok:slow")})
	got := make([]byte, len(want)+1)
	slow.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(slow, got); err != nil || !bytes.Equal(got, append(want, '!')) {
		t.Fatalf("the slow connection: %v %q, want its answer then the successor's", err, got)
	}
}

// holdAsync starts a GET of "hold" inline, on the loop's goroutine, and
// holds the loop there until release is closed; every other call is
// completed by a goroutine of its own after a few milliseconds.
type holdAsync struct {
	echo
	release chan struct{}
	held    atomic.Int64
}

func (h *holdAsync) Start(c *store.Call) bool {
	id := string(c.ID)
	if id == "hold" {
		h.held.Add(1)
		<-h.release
		c.Res, c.Err = h.echo.Get(context.Background(), c.ID, c.Dst)
		c.Done.Complete(c)
		return true
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		if c.Op == proto.OpGet {
			c.Res, c.Err = h.echo.Get(context.Background(), []byte(id), c.Dst)
		} else {
			c.Err = h.echo.Have(context.Background(), []byte(id))
		}
		c.Done.Complete(c)
	}()
	return true
}

// A kept connection whose two requests and shutdown all come while the
// loop is busy (one edge-triggered event for the three) gets its answers
// and then the end of the stream: the loop reads on after the last
// answer, as no new edge will come for the end already in the socket.
func TestAsyncHalfCloseAfterPipelinedRequests(t *testing.T) {
	h := &holdAsync{release: make(chan struct{})}
	_, _, sock := startLoops(t, Options{Handler: &store.Handler{Store: h}})
	a, rd := dialGet(t, sock, "first") // idle and watched from here on
	defer a.Close()
	b, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sendGet(t, b, 9, "hold")
	waittest.For(t, "the loop to be held", func() bool { return h.held.Load() == 1 })
	var req []byte
	req, _ = proto.AppendMessage(req, &proto.Message{UID: 1, Op: proto.OpGet, Payload: []byte("x")})
	req, _ = proto.AppendMessage(req, &proto.Message{UID: 2, Op: proto.OpGet, Payload: []byte("y")})
	if _, err := a.Write(req); err != nil {
		t.Fatal(err)
	}
	if err := a.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	for uid := uint32(1); uid <= 2; uid++ {
		m, err := rd.ReadMessage()
		if err != nil || m.UID != uid {
			t.Fatalf("answer %d: %+v, %v", uid, m, err)
		}
	}
	if m, err := rd.ReadMessage(); err != io.EOF {
		t.Fatalf("after the answers: %+v, %v; want the end of the stream", m, err)
	}
}

// matchLog counts the warnings that contain a string, and keeps the time
// of the last.
type matchLog struct {
	sub  string
	n    atomic.Int64
	last atomic.Int64 // UnixNano
}

func (l *matchLog) Printf(f string, a ...any) {
	if strings.Contains(fmt.Sprintf(f, a...), l.sub) {
		l.last.Store(time.Now().UnixNano())
		l.n.Add(1)
	}
}

// A Shutdown that stops accepting while accepting is paused after an
// accept error (accept.Backoff) leaves no pause behind: the loop serves
// its connections on, here a kept connection's request sent in the grace
// period, and gets its answer. Before, the pause stayed the loop's
// deadline once it had passed, and a parked loop found it passed at each
// Wait, before looking at its sockets: it spun without serving, and the
// request was cut off at the end of the grace.
func TestAsyncStopAcceptingDuringAnAcceptPause(t *testing.T) {
	// One P, a store whose answers come from goroutines (no Poll) and a
	// connection adopted before Serve: the loop parks at every wait from
	// its first on, as a loop of RawWaitsWhile does on more Ps once its
	// events are 10 ms apart, the epoll set it parks in (made at its
	// first park) open before the descriptors run out below.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	log := &matchLog{sub: "accept failed"}
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Handler: &store.Handler{Store: &async{Store: echo{}}}, Log: log})
	ours, theirs, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	p.Adopt(theirs, nil)
	served := make(chan struct{})
	go func() { p.Serve(ln); close(served) }()
	defer func() { <-served }()
	kept, rd := dialGet(t, sock, "a")
	// The loop's duplicate of the listener: the other descriptor of its
	// socket.
	rc, err := ln.(*net.UnixListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	lnfd := -1
	rc.Control(func(fd uintptr) { lnfd, err = int(fd), syscall.Fstat(int(fd), &st) })
	if err != nil {
		t.Fatal(err)
	}
	ino := st.Ino
	sameSocket := func(fd int) bool { var s syscall.Stat_t; return syscall.Fstat(fd, &s) == nil && s.Ino == ino }
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	dup := -1
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd != lnfd && sameSocket(fd) {
			dup = fd
		}
	}
	if dup < 0 {
		t.Fatal("no duplicate of the listener found")
	}

	// Every descriptor number taken: the next accept fails (EMFILE).
	extra, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(extra)
	release := fdtest.Exhaust(t, extra, 0)
	if err := syscall.Connect(extra, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	waittest.For(t, "an accept to fail", func() bool { return log.n.Load() > 0 })

	// Shutdown with a grace period: accepting stops (the loop closes its
	// duplicate), then the connections are served for the grace; the
	// request comes once the pause after the last failure (5 ms, doubled
	// at each one) is over.
	p.HandOver(nil, 3*time.Second)
	done := make(chan struct{})
	go func() { p.Shutdown(ln, 5*time.Second); close(done) }()
	waittest.For(t, "the loop to stop accepting", func() bool { return !sameSocket(dup) })
	release()
	pause := time.Second
	if n := log.n.Load(); n < 8 {
		pause = 5 * time.Millisecond << (n - 1)
	}
	last := time.Unix(0, log.last.Load())
	waittest.For(t, "the accept pause to be over", func() bool { return time.Since(last) > pause+50*time.Millisecond })
	sendGet(t, kept, 7, "b")
	kept.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := rd.ReadMessage()
	if err != nil || m.UID != 7 || string(m.Payload) != "ok:b" {
		t.Fatalf("a request in the grace period after an accept pause: %v %v, want its answer", m, err)
	}
	<-done
}

// A connection adopted as Shutdown begins is closed, by Adopt or by the
// loop, never left with its descriptor open and nobody serving it.
// Before, Adopt looked at Closing once more after deciding that the loop
// would take it, and a Shutdown begun in between had it do neither.
func TestAdoptAsShutdownBegins(t *testing.T) {
	p, ln, _ := startLoops(t, Options{Handler: &store.Handler{Store: &async{Store: echo{}}}})
	waittest.For(t, "the loop to run", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.loop != nil })
	ours, theirs, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	done := make(chan struct{})
	testHookAdopt = func() {
		go func() { p.Shutdown(ln, 5*time.Second); close(done) }()
		waittest.For(t, "Shutdown to begin", p.set.Closing)
	}
	defer func() { testHookAdopt = nil }()
	p.Adopt(theirs, nil)
	ours.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := ours.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the connection adopted as Shutdown began: read %d, %v; want it closed", n, err)
	}
	<-done
}

// heldGet sends a GET of id on a new connection and waits until st holds
// it (st.held 1); the connection is closed when the test ends.
func heldGet(t *testing.T, sock string, st *async, uid uint32, id string) net.Conn {
	t.Helper()
	slow, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	sendGet(t, slow, uid, id)
	waittest.For(t, "the slow GET to be started", func() bool { return st.held.Load() == 1 })
	return slow
}
