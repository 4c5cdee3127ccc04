// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/evloop"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// logCh collects the warnings of a Server.
func logCh() (chan string, logFunc) {
	ch := make(chan string, 64)
	return ch, func(f string, a ...any) {
		select {
		case ch <- fmt.Sprintf(f, a...):
		default:
		}
	}
}

func expectLog(t *testing.T, ch chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case msg := <-ch:
			if strings.Contains(msg, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no warning with %q", want)
		}
	}
}

// expectEnd waits for the server to close c (a read sees the end).
func expectEnd(t *testing.T, c *client) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %v, want the end of the stream", err)
	}
}

// waitConn waits until a connection of s is as cond says (what, for the
// failure).
func waitConn(t *testing.T, s *Server, what string, cond func(*connState) bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; {
		s.limits.mu.Lock()
		ok := false
		s.limits.each(func(cs *connState) { ok = ok || cond(cs) })
		s.limits.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no connection %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Plaintext connections are served by event loops, one per P (or as many
// as Options.Loops says), both those opened for one request and those
// kept; with Loops negative, by a goroutine each, the same way.
func TestLoopsServe(t *testing.T) {
	for _, loops := range []int{0, 1, 3, -1} {
		t.Run(fmt.Sprint(loops), func(t *testing.T) {
			c := cache.New(cache.Config{})
			s, sock := serveT(t, Options{Store: c.Store(), Loops: loops})
			want := loops
			switch {
			case loops == 0:
				want = runtime.GOMAXPROCS(0)
			case loops < 0:
				want = 0
			}
			keep := dial(t, sock) // Serve has begun
			end := time.Now().Add(5 * time.Second)
			for int(s.loops.Load()) != want && time.Now().Before(end) {
				time.Sleep(time.Millisecond)
			}
			if n := s.loops.Load(); int(n) != want {
				t.Fatalf("%d loops, want %d", n, want)
			}
			if p := keep.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("id"), []byte("data"))); !bytes.Equal(p, []byte{0}) {
				t.Fatalf("ADD: %x", p)
			}
			for i := 0; i < 50; i++ {
				one := dial(t, sock)
				if p := one.roundTrip(proto.OpGet, []byte("id")); string(p) != "data" {
					t.Fatalf("GET %d: %q", i, p)
				}
				one.nc.Close()
				if p := keep.roundTrip(proto.OpHave, []byte("id")); !bytes.Equal(p, []byte{0}) {
					t.Fatalf("HAVE %d: %x", i, p)
				}
			}
			if s.Ops() != 101 {
				t.Fatalf("%d operations, want 101", s.Ops())
			}
		})
	}
}

// A request that arrives in pieces leaves the loop for a goroutine, whose
// frame timeout applies: completed in time it is answered, and the
// connection goes back to a loop for its next requests; left partial it
// is closed and logged.
func TestLoopPartialRequest(t *testing.T) {
	c := cache.New(cache.Config{})
	logs, lf := logCh()
	s, sock := serveT(t, Options{Store: c.Store(), Loops: 1, FrameTimeout: 300 * time.Millisecond, Log: lf})
	req := request(3, proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("id"), bytes.Repeat([]byte{1}, 3000)))
	cl := dial(t, sock)
	if _, err := cl.nc.Write(req[:5]); err != nil {
		t.Fatal(err)
	}
	// The loop reads the first piece, would wait for the rest, and passes
	// the connection to a goroutine; the rest is that goroutine's to read.
	waitConn(t, s, "in a goroutine, in the middle of a request", func(cs *connState) bool {
		_, fd := cs.raw.(fdSock)
		return !fd && cs.state.Load() == statePartial
	})
	for _, part := range [][]byte{req[5:2100], req[2100:]} {
		if _, err := cl.nc.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if m := cl.recv(); !bytes.Equal(m.Payload, []byte{0}) || m.UID != 3 {
		t.Fatalf("ADD in pieces: uid %d, %x", m.UID, m.Payload)
	}
	// Back in a loop, the connection serves on.
	waitConn(t, s, "back in a loop", func(cs *connState) bool {
		_, fd := cs.raw.(fdSock)
		return fd
	})
	for end := time.Now().Add(10 * time.Second); s.set.Count() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d connections still served by goroutines", s.set.Count())
		}
	}
	for i := 0; i < 3; i++ {
		if p := cl.roundTrip(proto.OpHave, []byte("id")); !bytes.Equal(p, []byte{0}) {
			t.Fatalf("HAVE: %x", p)
		}
	}
	// And in pieces again, it leaves the loop again.
	if _, err := cl.nc.Write(req[:5]); err != nil {
		t.Fatal(err)
	}
	waitConn(t, s, "in a goroutine again", func(cs *connState) bool {
		_, fd := cs.raw.(fdSock)
		return !fd && cs.state.Load() == statePartial
	})
	if _, err := cl.nc.Write(req[5:]); err != nil {
		t.Fatal(err)
	}
	if m := cl.recv(); !bytes.Equal(m.Payload, []byte{proto.AddErrMatching}) {
		t.Fatalf("the same ADD again, in pieces: %x", m.Payload)
	}
	slow := dial(t, sock)
	slow.nc.Write(req[:20])
	start := time.Now()
	expectEnd(t, slow)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("a partial request closed after %v, before the frame timeout", d)
	}
	expectLog(t, logs, "partial request timed out")
}

// A request whose pieces come within partialGrace of each other (here a
// minute) is read and answered by its loop: the connection waits there
// for each next piece, and never has a goroutine.
func TestLoopWaitsForTheRestOfARequest(t *testing.T) {
	g := partialGrace
	t.Cleanup(func() { partialGrace = g }) // after the server's end
	partialGrace = time.Minute
	c := cache.New(cache.Config{})
	s, sock := serveT(t, Options{Store: c.Store(), Loops: 1})
	req := request(3, proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("id"), bytes.Repeat([]byte{1}, 3000)))
	cl := dial(t, sock)
	for i, part := range [][]byte{req[:5], req[5:2100], req[2100:]} {
		if _, err := cl.nc.Write(part); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			waitConn(t, s, "waiting in its loop for the rest of a request", func(cs *connState) bool {
				_, fd := cs.raw.(fdSock)
				return fd && cs.state.Load() == statePartial
			})
		}
	}
	if m := cl.recv(); !bytes.Equal(m.Payload, []byte{0}) || m.UID != 3 {
		t.Fatalf("ADD in pieces: uid %d, %x", m.UID, m.Payload)
	}
	if p := cl.roundTrip(proto.OpHave, []byte("id")); !bytes.Equal(p, []byte{0}) {
		t.Fatalf("HAVE: %x", p)
	}
	if n := s.set.Count(); n != 0 {
		t.Fatalf("%d connections served by goroutines, want none", n)
	}
}

// A connection waiting in the loop between requests is closed once idle
// for Options.Idle, and one that keeps sending is not.
func TestLoopIdle(t *testing.T) {
	// 1 s: the busy connection's requests 50 ms apart stay within it
	// when the machine gives the test no CPU for a while (with 200 ms,
	// pinned to one CPU with -race and two runs at once, 2 runs in 6 had
	// the busy connection closed). A whole process descheduled for a
	// second still outlasts it (pinned, -cpu 1,2, load 10: 1 run in 6),
	// so a try in which the busy connection's requests came over half
	// of it apart does not count against the server: up to three tries.
	const idleFor = time.Second
	for try := 1; ; try++ {
		gap, err := loopIdleTry(t, idleFor)
		if err == nil {
			return
		}
		if gap <= idleFor/2 || try == 3 {
			t.Fatalf("%v (the busy connection's requests at most %v apart)", err, gap)
		}
		t.Logf("try %d: %v, with the busy connection's requests %v apart: again", try, err, gap)
	}
}

// loopIdleTry is one TestLoopIdle on a fresh server: the longest gap
// between the busy connection's requests, and what went wrong.
func loopIdleTry(t *testing.T, idleFor time.Duration) (time.Duration, error) {
	c := cache.New(cache.Config{})
	_, sock := serveT(t, Options{Store: c.Store(), Loops: 1, Idle: idleFor})
	idle := dial(t, sock)
	busy := dial(t, sock)
	last, gap := time.Now(), time.Duration(0) // the busy connection's last request (or its dial)
	start := time.Now()                       // the idle time begins after the answer is written
	idle.roundTrip(proto.OpHave, []byte("x"))
	closed := make(chan time.Duration, 1)
	go func() {
		idle.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := idle.nc.Read(make([]byte, 1))
		if err == io.EOF {
			closed <- time.Since(start)
		}
		close(closed)
	}()
	busyTrip := func() error { // within its idle time each
		now := time.Now()
		gap, last = max(gap, now.Sub(last)), now
		if _, err := busy.nc.Write(request(9, proto.OpHave, []byte("x"))); err != nil {
			return fmt.Errorf("the busy connection: %v", err)
		}
		m, err := busy.rd.ReadMessage()
		if err != nil {
			return fmt.Errorf("the busy connection: %v", err)
		}
		if !bytes.Equal(m.Payload, []byte{1}) {
			t.Fatalf("the busy connection: %x", m.Payload)
		}
		return nil
	}
	var d time.Duration
	ok := false
	for wait := true; wait; {
		if err := busyTrip(); err != nil {
			return gap, err
		}
		select {
		case d, ok = <-closed:
			wait = false
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !ok {
		t.Fatal("the idle connection was not closed")
	}
	if d < idleFor {
		t.Fatalf("closed after %v idle, before -idle", d)
	}
	return gap, busyTrip()
}

// A client that sends and reads only later: its answers wait in a
// goroutine of the connection's own, and all of them arrive, in order.
func TestLoopSlowReader(t *testing.T) {
	c := cache.New(cache.Config{})
	s, sock := serveT(t, Options{Store: c.Store(), Loops: 1})
	cl := dial(t, sock)
	big := bytes.Repeat([]byte{7}, 20000)
	cl.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("big"), big))
	const n = 200 // 4 MB of answers, far more than the socket buffers
	go func() {
		var batch []byte
		for i := 0; i < n; i++ {
			batch = append(batch, request(uint32(i), proto.OpGet, []byte("big"))...)
		}
		cl.nc.Write(batch)
	}()
	// The server's writes fill the buffers: the connection waits in a
	// goroutine of its own for the client to take its answers.
	waitConn(t, s, "in a goroutine, writing", func(cs *connState) bool {
		_, fd := cs.raw.(fdSock)
		return !fd && cs.state.Load() == stateWriting
	})
	for i := 0; i < n; i++ {
		if m := cl.recv(); m.UID != uint32(i) || !bytes.Equal(m.Payload, big) {
			t.Fatalf("answer %d: uid %d, %d bytes", i, m.UID, len(m.Payload))
		}
	}
}

// fourInLoops serves a cache with two event loops on a unix socket and
// connects four clients that have each had an answer (those given
// second, too, are kept: spread over the loops). Serve's end closes done.
func fourInLoops(t *testing.T, second bool) (s *Server, ln net.Listener, sock string, done chan struct{}, cls []*client) {
	c := cache.New(cache.Config{})
	sock = t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s = New(Options{Store: c.Store(), Loops: 2})
	done = make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	for i := 0; i < 4; i++ {
		cl := dial(t, sock)
		cl.roundTrip(proto.OpHave, []byte("x"))
		if second {
			cl.roundTrip(proto.OpHave, []byte("x"))
		}
		cls = append(cls, cl)
	}
	return s, ln, sock, done, cls
}

// Shutdown closes the connections waiting in the loops and Serve returns
// (serveT's cleanup waits for it); a connection made after it is refused.
func TestLoopShutdown(t *testing.T) {
	s, ln, sock, done, cls := fourInLoops(t, false)
	s.Shutdown(ln)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, cl := range cls {
		expectEnd(t, cl)
	}
	if nc, err := net.Dial("unix", sock); err == nil {
		nc.Close()
		t.Fatal("a connection after Shutdown was accepted")
	}
}

// At MaxConns a connection waiting in a loop that has sent nothing for
// long enough is closed to admit a new one, as in its own goroutine.
func TestLoopMaxConnsEvicts(t *testing.T) {
	c := cache.New(cache.Config{})
	logs, lf := logCh()
	s, sock := serveT(t, Options{Store: c.Store(), Loops: 1, MaxConns: 1, Log: lf})
	old := dial(t, sock)
	// Old enough to be a victim by the server's clock: its age counts from
	// the accept, which a loaded machine can run well after the dial.
	waitConn(t, s, "old enough to be a victim", func(cs *connState) bool {
		return time.Since(time.Unix(0, cs.since.Load())) > minVictimAge+50*time.Millisecond
	})
	cl := dial(t, sock)
	if p := cl.roundTrip(proto.OpHave, []byte("x")); !bytes.Equal(p, []byte{1}) {
		t.Fatalf("the new connection: %x", p)
	}
	expectEnd(t, old)
	expectLog(t, logs, "(no request yet) to admit one from local client")
}

// Connections that keep asking (a second request) spread over the loops
// that wait raw, or over all when none or all do (the accepting one
// last), and go on being answered there; those that ask once stay with
// the accepting loop.
func TestLoopsSpreadKeptConnections(t *testing.T) {
	c := cache.New(cache.Config{})
	s, sock := serveT(t, Options{Store: c.Store(), Loops: 2})
	for end := time.Now().Add(5 * time.Second); s.loopSet.Load() == nil; {
		if time.Now().After(end) {
			t.Fatal("no loops after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	want := [2]int32{2, 2}
	if ls := *s.loopSet.Load(); !ls[0].raw && ls[1].raw {
		// Two Ps: the second waits raw (the first accepts, and parks).
		want = [2]int32{0, 4}
	}
	kept := func() (n [2]int32) {
		if ls := s.loopSet.Load(); ls != nil {
			for i, sl := range *ls {
				n[i] = sl.kept.Load()
			}
		}
		return n
	}
	var cls []*client
	for i := 0; i < 4; i++ {
		cl := dial(t, sock)
		cl.roundTrip(proto.OpHave, []byte("x"))
		cls = append(cls, cl)
	}
	if n := kept(); n != [2]int32{} {
		t.Fatalf("kept after one request each: %v, want none", n)
	}
	for _, cl := range cls {
		cl.roundTrip(proto.OpHave, []byte("x"))
	}
	end := time.Now().Add(5 * time.Second)
	for kept() != want && time.Now().Before(end) {
		time.Sleep(time.Millisecond)
	}
	if n := kept(); n != want {
		t.Fatalf("kept connections per loop: %v, want %v", n, want)
	}
	for i := 0; i < 20; i++ {
		for _, cl := range cls {
			if p := cl.roundTrip(proto.OpHave, []byte("x")); !bytes.Equal(p, []byte{1}) {
				t.Fatalf("HAVE: %x", p)
			}
		}
	}
	cls[0].nc.Close()
	cls[1].nc.Close()
	end = time.Now().Add(5 * time.Second)
	for n := kept(); n[0]+n[1] != 2 && time.Now().Before(end); n = kept() {
		time.Sleep(time.Millisecond)
	}
	if n := kept(); n[0]+n[1] != 2 {
		t.Fatalf("kept after two closed: %v", n)
	}
}

// A connection waiting in a loop that sends its last request and shuts
// down its side at once is answered and closed: the end is not missed for
// coming with the request.
func TestLoopHalfCloseAfterRequests(t *testing.T) {
	c := cache.New(cache.Config{})
	_, sock := serveT(t, Options{Store: c.Store(), Loops: 1})
	for i := 0; i < 20; i++ {
		cl := dial(t, sock)
		cl.roundTrip(proto.OpHave, []byte("x")) // now watched by its loop
		cl.roundTrip(proto.OpHave, []byte("x"))
		req := request(5, proto.OpHave, []byte("x"))
		uc := cl.nc.(*net.UnixConn)
		uc.Write(req)
		uc.CloseWrite()
		if m := cl.recv(); m.UID != 5 {
			t.Fatalf("answer to uid %d", m.UID)
		}
		cl.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := cl.nc.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("round %d: after the answer: %v, want the server's close", i, err)
		}
		cl.nc.Close()
	}
}

// A TCP connection a loop serves has the socket options net's Accept
// would have given it (from the listening socket): no Nagle delay,
// keep-alive probes; the listener defers accepting to the first bytes.
func TestLoopTCPSocketOptions(t *testing.T) {
	type opts struct{ nodelay, keepalive, idle int }
	got := make(chan opts, 4)
	testHookWatched = func(fd int) {
		var o opts
		o.nodelay, _ = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		o.keepalive, _ = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		o.idle, _ = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		got <- o
	}
	defer func() { testHookWatched = nil }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(cache.Config{})
	s := New(Options{Store: c.Store(), Loops: 1})
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	defer func() { s.Shutdown(ln); <-done }()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	cl := &client{t, nc, proto.NewReader(nc, proto.WantResponses)}
	cl.roundTrip(proto.OpHave, []byte("x"))
	select {
	case o := <-got:
		if o != (opts{1, 1, 15}) {
			t.Fatalf("TCP_NODELAY %d, SO_KEEPALIVE %d, TCP_KEEPIDLE %d; want 1, 1, 15", o.nodelay, o.keepalive, o.idle)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was never watched")
	}
	// And the listener queues a connection only with its first bytes
	// (evloop.DeferAccept): one wake-up per connection opened for a
	// request.
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var deferSecs int
	rc.Control(func(fd uintptr) {
		deferSecs, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
	})
	if err != nil || deferSecs <= 0 {
		t.Fatalf("the listener's TCP_DEFER_ACCEPT: %d (%v), want it set", deferSecs, err)
	}
}

// fewestKept picks, among the loops that wait raw when there are any, the
// one with the fewest kept connections, a tie going to the later loop: a
// loop that parks in the runtime's poller pays the scheduler's park and
// wake-up at every wait, which the persistent clients it would serve
// make often.
func TestFewestKeptPrefersRawLoops(t *testing.T) {
	mk := func(raw []bool, kept []int32) []*srvLoop {
		var ls []*srvLoop
		for i := range raw {
			sl := &srvLoop{raw: raw[i]}
			sl.kept.Store(kept[i])
			ls = append(ls, sl)
		}
		return ls
	}
	for _, tc := range []struct {
		raw  []bool
		kept []int32
		want int
	}{
		{[]bool{false, true}, []int32{0, 0}, 1},
		{[]bool{false, true}, []int32{0, 5}, 1}, // the parking loop gets none
		{[]bool{false, true, true}, []int32{0, 3, 2}, 2},
		{[]bool{false, true, true}, []int32{0, 2, 3}, 1},
		{[]bool{false, true, true}, []int32{0, 2, 2}, 2},
		{[]bool{false, false}, []int32{0, 1}, 0}, // none waits raw: all spread
		{[]bool{false, false}, []int32{1, 1}, 1},
		{[]bool{true}, []int32{7}, 0},
	} {
		ls := mk(tc.raw, tc.kept)
		if got := fewestKept(ls); got != ls[tc.want] {
			for i, sl := range ls {
				if sl == got {
					t.Errorf("raw %v kept %v: loop %d, want %d", tc.raw, tc.kept, i, tc.want)
				}
			}
		}
	}
}

// The listener's own descriptor leaves the runtime's poller once the
// loops accept on their duplicate: there it woke a thread waiting in the
// poller at every connection, for nothing.
func TestLoopsListenerLeavesThePoller(t *testing.T) {
	if _, err := os.Stat("/proc/self/fdinfo"); err != nil {
		t.Skip("no /proc/self/fdinfo:", err)
	}
	s, ln, sock := serveLn(t, Options{Store: cache.New(cache.Config{}).Store()})
	dial(t, sock).roundTrip(proto.OpHave, []byte("id")) // Serve has begun
	for end := time.Now().Add(5 * time.Second); s.loops.Load() == 0 || evloop.InPoller(ln); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d loops, the listener still in the runtime's poller", s.loops.Load())
		}
	}
}
