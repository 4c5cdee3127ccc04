// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testDeadline = 10 * time.Second

// pump runs select rounds (100 ms timeout) and IO on every connection
// until done() holds. step, if not nil, runs after each round's IO.
// Any IO failure or the deadline fails the test.
func pump(t *testing.T, sel *Selector, conns []*Connection, step func(), done func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached before the deadline")
		}
		if _, err := sel.Select(100000, true); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("select: %v", err)
		}
		for i, c := range conns {
			if !c.IO() {
				t.Fatalf("connection %d died", i)
			}
		}
		if step != nil {
			step()
		}
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// stream moves data[*off:] into c's send buffer as space allows.
func feed(c *Connection, data []byte, off *int) {
	*off += int(c.Send().Write(data[*off:]))
}

func drain(c *Connection, into *[]byte) {
	r := c.Read()
	*into = append(*into, r.Data()...)
	r.Discard(r.Used())
}

func echoBothWays(t *testing.T, sel *Selector, a, b *Connection, n int) {
	t.Helper()
	ab, ba := pattern(n, 1), pattern(n, 2)
	var offA, offB int
	var gotB, gotA []byte
	step := func() {
		feed(a, ab, &offA)
		feed(b, ba, &offB)
		drain(b, &gotB)
		drain(a, &gotA)
	}
	step()
	pump(t, sel, []*Connection{a, b}, step, func() bool { return len(gotA) == n && len(gotB) == n })
	if !bytes.Equal(gotB, ab) || !bytes.Equal(gotA, ba) {
		t.Fatal("data corrupted in transit")
	}
}

func TestPairEcho(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	if a.Read() != nil || a.Send() != nil || a.IsEstablished() {
		t.Fatal("unused connection exposes buffers")
	}
	if a.CreatePair(b, 32769) || a.Live() || b.Live() {
		t.Fatal("pair with size 32769")
	}
	if !a.CreatePair(b, 1024) || !a.IsEstablished() || !b.IsEstablished() || a.Read().Size() != 1024 || b.Send().Size() != 1024 {
		t.Fatal("create_pair")
	}
	if a.CreatePair(b, 1024) {
		t.Fatal("create_pair on live connections")
	}
	if a.IO() {
		t.Fatal("IO on an unbound connection succeeded")
	}
	sel := NewSelector()
	defer sel.Free()
	if !a.AddToSelector(sel) || !b.AddToSelector(sel) || a.AddToSelector(sel) || sel.NumObjects() != 2 {
		t.Fatal("add_to_selector")
	}
	if sel.Type() != SelectorFdPoll {
		t.Fatal("dynamic selector not converted")
	}
	echoBothWays(t, sel, a, b, 5000)
	// set_size: a real change empties the buffers
	a.Send().Write([]byte("xx"))
	if !a.SetSize(1024) || a.Send().Used() != 2 || !a.SetSize(2048) || a.Send().Used() != 0 || a.Read().Size() != 2048 || a.SetSize(32769) {
		t.Fatal("set_size")
	}
}

// In raw mode (SetRaw) the selector's waits and its connections' reads and
// sends are the raw system calls; the data and the end of file are the same.
func TestPairEchoRaw(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	if !a.CreatePair(b, 1024) {
		t.Fatal("create_pair")
	}
	sel := NewSelector()
	defer sel.Free()
	if !a.AddToSelector(sel) || !b.AddToSelector(sel) {
		t.Fatal("add_to_selector")
	}
	sel.SetRaw(true)
	if !sel.raw {
		t.Fatal("SetRaw(true) did not set raw mode")
	}
	echoBothWays(t, sel, a, b, 5000)
	b.Free()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close was not seen in raw mode")
		}
		if n, _ := sel.Select(100000, true); n > 0 && !a.IO() {
			break
		}
	}
	sel.SetRaw(false)
	if sel.raw {
		t.Fatal("SetRaw(false) left raw mode on")
	}
}

func TestStaleReadinessIsConsumed(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	a.CreatePair(b, 64)
	sel := NewSelectorFdSelect()
	defer sel.Free()
	a.AddToSelector(sel)
	if _, err := unix.Write(b.fd, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	pump(t, sel, []*Connection{a}, nil, func() bool { return a.Read().Used() == 2 })
	// readiness was consumed: IO again without select is a no-op, not death
	for i := 0; i < 3; i++ {
		if !a.IO() {
			t.Fatal("IO without a new select killed the connection (E-26)")
		}
	}
	if n, err := sel.Select(1000, true); n != 0 || err != nil {
		t.Fatalf("select with nothing to do: %d %v", n, err)
	}
	if !a.IO() || a.Read().Used() != 2 {
		t.Fatal("IO after a timed-out select")
	}
}

func TestEOFFlushesPendingOutput(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	a.CreatePair(b, 256)
	sel := NewSelector()
	defer sel.Free()
	a.AddToSelector(sel)
	// the peer sends a request and half-closes (EDGES E-12)
	if _, err := unix.Write(b.fd, []byte("req")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(b.fd, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testDeadline)
	answered := false
	for {
		if time.Now().After(deadline) {
			t.Fatal("EOF not detected")
		}
		sel.Select(100000, true)
		if !a.IO() {
			break
		}
		if !answered && bytes.Equal(a.Read().Data(), []byte("req")) {
			a.Send().Write([]byte("resp"))
			answered = true
		}
	}
	if !answered {
		t.Fatal("request not read before EOF")
	}
	buf := make([]byte, 16)
	n, err := unix.Read(b.fd, buf)
	if err != nil || string(buf[:n]) != "resp" {
		t.Fatalf("peer got %q, %v; want the response flushed after EOF", buf[:max(n, 0)], err)
	}
}

func TestWriteToClosedPeerNoSIGPIPE(t *testing.T) {
	// SIGPIPE (13) is raised synchronously by the failing write. SIGALRM
	// (14), sent afterwards, reaches the channel after any SIGPIPE: the
	// runtime hands pending signals over in signal-number order.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGPIPE, syscall.SIGALRM)
	defer signal.Stop(sig)
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	a.CreatePair(b, 256)
	b.Free()
	sel := NewSelector()
	defer sel.Free()
	a.AddToSelector(sel)
	a.Send().Write([]byte("data for nobody"))
	deadline := time.Now().Add(testDeadline)
	for a.IO() {
		if time.Now().After(deadline) {
			t.Fatal("dead peer not detected")
		}
		sel.Select(100000, true)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGALRM); err != nil {
		t.Fatal(err)
	}
	for s := range sig {
		if s == syscall.SIGPIPE {
			t.Fatal("SIGPIPE raised (E-32)")
		}
		if s == syscall.SIGALRM {
			break
		}
	}
}

func tempSock(t *testing.T) string {
	dir, err := os.MkdirTemp("", "nal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

func mustAddr(t *testing.T, s string, size uint32) *Address {
	t.Helper()
	a := NewAddress()
	if !a.Create(s, size) {
		t.Fatalf("address %q refused", s)
	}
	return a
}

// acceptAll runs select rounds until want connections were accepted from
// l, checking that each round accepts at most one.
func acceptAll(t *testing.T, sel *Selector, l *Listener, others []*Connection, want int) []*Connection {
	t.Helper()
	var got []*Connection
	deadline := time.Now().Add(testDeadline)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d of %d", len(got), want)
		}
		sel.Select(100000, true)
		for _, c := range others {
			if !c.IO() {
				t.Fatal("client died")
			}
		}
		perRound := 0
		for {
			c := NewConnection()
			if !c.Accept(l) {
				c.Free()
				break
			}
			perRound++
			got = append(got, c)
		}
		if perRound > 1 {
			t.Fatalf("%d connections accepted in one round", perRound)
		}
	}
	return got
}

func testListenConnect(t *testing.T, addrStr string, connectStr func(*Listener) string) {
	laddr := mustAddr(t, addrStr, 2048)
	defer laddr.Free()
	l := NewListener()
	defer l.Free()
	if !l.Create(laddr) || l.Create(laddr) || l.Finished() {
		t.Fatal("listener create")
	}
	sel := NewSelector()
	defer sel.Free()
	if !l.AddToSelector(sel) || l.AddToSelector(sel) {
		t.Fatal("listener add_to_selector")
	}
	caddr := mustAddr(t, connectStr(l), 1500)
	defer caddr.Free()
	var clients []*Connection
	for i := 0; i < 3; i++ {
		c := NewConnection()
		if !c.Create(caddr) || c.Create(caddr) {
			t.Fatal("connect")
		}
		if !c.AddToSelector(sel) {
			t.Fatal("bind client")
		}
		clients = append(clients, c)
	}
	servers := acceptAll(t, sel, l, clients, 3)
	for _, s := range servers {
		if s.Read().Size() != 2048 || !s.IsEstablished() {
			t.Fatal("accepted connection not sized from the listener's address")
		}
		if !s.AddToSelector(sel) {
			t.Fatal("bind server side")
		}
	}
	if clients[0].Send().Size() != 1500 {
		t.Fatal("client buffers not sized from the address")
	}
	// pair up by exchanging ids: each client sends its index
	for i, c := range clients {
		c.Send().Write([]byte{byte('0' + i)})
	}
	all := append(append([]*Connection{}, clients...), servers...)
	pump(t, sel, all, nil, func() bool {
		for _, s := range servers {
			if s.Read().Used() != 1 {
				return false
			}
		}
		return true
	})
	byID := map[byte]*Connection{}
	for _, s := range servers {
		byID[s.Read().Data()[0]] = s
		s.Read().Reset()
	}
	if len(byID) != 3 {
		t.Fatal("ids lost")
	}
	echoBothWays(t, sel, clients[1], byID['1'], 20000)
	for _, c := range all {
		c.Free()
	}
	if sel.NumObjects() != 1 {
		t.Fatalf("num_objects = %d after freeing connections", sel.NumObjects())
	}
}

func TestUnixListenConnect(t *testing.T) {
	path := tempSock(t)
	testListenConnect(t, "UNIX:"+path, func(*Listener) string { return "UNIX:" + path })
}

func boundPort(t *testing.T, fd int) int {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	t.Fatal("not an inet socket")
	return 0
}

func TestTCPListenConnect(t *testing.T) {
	testListenConnect(t, "IP:127.0.0.1:0", func(l *Listener) string {
		return "IP:127.0.0.1:" + strconv.Itoa(boundPort(t, l.fd))
	})
	nodelay := func(c *Connection) int {
		v, err := unix.GetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	l := NewListener()
	defer l.Free()
	l.Create(mustAddr(t, "IP:127.0.0.1:0", 16))
	a := mustAddr(t, "IP:127.0.0.1:"+strconv.Itoa(boundPort(t, l.fd)), 16)
	c := NewConnection()
	defer c.Free()
	c.Create(a)
	if nodelay(c) == 0 {
		t.Fatal("TCP_NODELAY not set by default")
	}
	sel := NewSelector()
	defer sel.Free()
	l.AddToSelector(sel)
	acc := acceptAll(t, sel, l, nil, 1)[0]
	defer acc.Free()
	if nodelay(acc) == 0 {
		t.Fatal("TCP_NODELAY not set on an accepted connection")
	}
	c.Reset()
	ConfigSetNagle(true)
	defer ConfigSetNagle(false)
	c.Create(a)
	if nodelay(c) != 0 {
		t.Fatal("TCP_NODELAY set with nagle enabled")
	}
}

func TestIPv6ListenConnect(t *testing.T) {
	probe, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
	if err == nil {
		err = unix.Bind(probe, &unix.SockaddrInet6{Addr: [16]byte{15: 1}})
		unix.Close(probe)
	}
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	testListenConnect(t, "IPv6:[::1]:0", func(l *Listener) string {
		return "IPv6:[::1]:" + strconv.Itoa(boundPort(t, l.fd))
	})
}

func closedPort(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return boundPort(t, fd)
}

func TestConnectRefusedShowsInIO(t *testing.T) {
	a := mustAddr(t, fmt.Sprintf("IP:127.0.0.1:%d", closedPort(t)), 64)
	c := NewConnection()
	defer c.Free()
	if !c.Create(a) {
		t.Skip("connect failed synchronously") // allowed by the contract, not what Linux does
	}
	sel := NewSelector()
	defer sel.Free()
	c.AddToSelector(sel)
	deadline := time.Now().Add(testDeadline)
	for c.IO() {
		if c.IsEstablished() {
			t.Fatal("refused connect became established")
		}
		if time.Now().After(deadline) {
			t.Fatal("refused connect not reported")
		}
		sel.Select(100000, true)
	}
}

func TestPendingConnect(t *testing.T) {
	// A listening socket with backlog 0 that never accepts: once its queue
	// is full the kernel drops SYNs and further connects stay pending.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	a := mustAddr(t, fmt.Sprintf("IP:127.0.0.1:%d", boundPort(t, fd)), 64)
	sel := NewSelector()
	defer sel.Free()
	var conns []*Connection
	for i := 0; i < 4; i++ {
		c := NewConnection()
		defer c.Free()
		if !c.Create(a) {
			t.Fatal("create")
		}
		c.AddToSelector(sel)
		conns = append(conns, c)
	}
	for round := 0; round < 3; round++ {
		sel.Select(50000, true)
		for _, c := range conns {
			if !c.IO() {
				t.Fatal("pending connect reported dead")
			}
		}
	}
	pending := 0
	for _, c := range conns {
		if !c.IsEstablished() {
			pending++
			if c.Send().Write([]byte("x")) != 1 {
				t.Fatal("send buffer of a pending connection unusable")
			}
		}
	}
	if pending == 0 {
		t.Fatal("no connect stayed pending behind a full backlog")
	}
}

func TestListenerUnixFiles(t *testing.T) {
	path := tempSock(t)
	a := mustAddr(t, "UNIX:"+path, 16)
	l := NewListener()
	if !l.Create(a) {
		t.Fatal("create")
	}
	st := func() os.FileInfo {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	for _, tt := range []struct {
		s    string
		ok   bool
		perm os.FileMode
	}{{"600", true, 0o600}, {"0644", true, 0o644}, {" 640", true, 0o640}, {"9", false, 0}, {"", false, 0}, {"-1", false, 0}, {"644x", false, 0}, {"17777", false, 0}} {
		if got := l.SetFSPerms(tt.s); got != tt.ok {
			t.Errorf("SetFSPerms(%q) = %v", tt.s, got)
		}
		if tt.ok && st().Mode().Perm() != tt.perm {
			t.Errorf("SetFSPerms(%q): mode %v", tt.s, st().Mode().Perm())
		}
	}
	if !l.SetFSOwner(nil, nil) {
		t.Error("SetFSOwner(nil, nil) failed")
	}
	bogus := "no-such-user-xyz"
	if l.SetFSOwner(&bogus, nil) || l.SetFSOwner(nil, &bogus) {
		t.Error("unknown user/group accepted")
	}
	if os.Geteuid() == 0 {
		daemon, root, empty := "daemon", "root", ""
		if !l.SetFSOwner(&daemon, nil) {
			t.Fatal("SetFSOwner(daemon) failed")
		}
		fi := st().Sys().(*syscall.Stat_t)
		if fi.Uid != 1 || fi.Gid != 1 {
			t.Errorf("owner daemon: uid %d gid %d, want 1 1", fi.Uid, fi.Gid)
		}
		if !l.SetFSOwner(&empty, &root) {
			t.Fatal("SetFSOwner(\"\", root) failed")
		}
		fi = st().Sys().(*syscall.Stat_t)
		if fi.Uid != 1 || fi.Gid != 0 {
			t.Errorf("group root: uid %d gid %d, want 1 0", fi.Uid, fi.Gid)
		}
	}
	// the socket file stays; a new listener replaces it
	l.Free()
	st()
	l2 := NewListener()
	if !l2.Create(a) {
		t.Fatal("listener could not replace a stale socket file")
	}
	l2.Free()
	// a regular file is not unlinked
	os.Remove(path)
	os.WriteFile(path, []byte("keep"), 0o600)
	l3 := NewListener()
	if l3.Create(a) {
		t.Fatal("listener deleted a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Fatal("regular file changed")
	}
	tl := NewListener()
	defer tl.Free()
	tl.Create(mustAddr(t, "IP:127.0.0.1:0", 1))
	if tl.SetFSPerms("600") || tl.SetFSOwner(nil, nil) {
		t.Fatal("fs settings on a TCP listener")
	}
}

func TestAcceptFailureDoesNotWedge(t *testing.T) {
	path := tempSock(t)
	a := mustAddr(t, "UNIX:"+path, 16)
	l := NewListener()
	defer l.Free()
	l.Create(a)
	sel := NewSelector()
	defer sel.Free()
	l.AddToSelector(sel)
	// pretend a select saw a connection that vanished (E-25)
	l.caught = true
	c := NewConnection()
	defer c.Free()
	if c.Accept(l) {
		t.Fatal("accept without a pending connection")
	}
	cl := NewConnection()
	defer cl.Free()
	if !cl.Create(a) {
		t.Fatal("connect")
	}
	acceptAll(t, sel, l, nil, 1)
}

func TestSelectorTimeouts(t *testing.T) {
	d := NewSelector()
	defer d.Free()
	start := time.Now()
	if n, err := d.Select(5e6, true); n != -1 || err != nil {
		t.Fatalf("dynamic selector without objects: %d %v", n, err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("dynamic selector without objects blocked")
	}
	p := NewSelectorFdPoll()
	defer p.Free()
	for _, usec := range []uint64{0, 500, 20000} {
		start := time.Now()
		n, err := p.Select(usec, true)
		if n != 0 || err != nil {
			t.Fatalf("empty poll selector: %d %v", n, err)
		}
		if el := time.Since(start); el < time.Duration(usec)*time.Microsecond {
			t.Errorf("Select(%dµs) returned after %v", usec, el)
		}
	}
	// once an object was bound, the dynamic selector is a poll selector
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	a.CreatePair(b, 16)
	a.AddToSelector(d)
	a.DelFromSelector()
	if n, err := d.Select(1000, true); n != 0 || err != nil || d.NumObjects() != 0 {
		t.Fatalf("converted selector: %d %v", n, err)
	}
	// reset and free really unbind
	a.AddToSelector(d)
	b.AddToSelector(d)
	d.Reset()
	if d.NumObjects() != 0 || a.Selector() != nil || b.IO() {
		t.Fatal("reset left objects bound")
	}
	if !a.AddToSelector(p) {
		t.Fatal("rebind after reset")
	}
	p.Free()
	if a.Selector() != nil || a.IO() {
		t.Fatal("free left objects bound")
	}
	if n, err := p.Select(0, true); n != -1 || err == nil {
		t.Fatal("select on a freed selector")
	}
	var nilSel *Selector
	if nilSel.NumObjects() != 0 || a.AddToSelector(nilSel) {
		t.Fatal("nil selector")
	}
	nilSel.Free()
	nilSel.Reset()
}

func TestManyConnectionsOneSelector(t *testing.T) {
	const pairs = 1000
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	if lim.Cur < 2*pairs+100 {
		want := lim
		want.Cur = min(lim.Max, 2*pairs+500)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil || want.Cur < 2*pairs+100 {
			t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", 2*pairs+100, err)
		}
		defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	sel := NewSelector()
	defer sel.Free()
	var all []*Connection
	for i := 0; i < pairs; i++ {
		a, b := NewConnection(), NewConnection()
		if !a.CreatePair(b, 64) || !a.AddToSelector(sel) || !b.AddToSelector(sel) {
			t.Fatalf("pair %d", i)
		}
		a.Send().Write([]byte(strconv.Itoa(i)))
		all = append(all, a, b)
	}
	defer func() {
		for _, c := range all {
			c.Free()
		}
	}()
	if sel.NumObjects() != 2*pairs {
		t.Fatalf("num_objects %d", sel.NumObjects())
	}
	maxFD := 0
	for _, c := range all {
		maxFD = max(maxFD, c.fd)
	}
	if maxFD < 1024 {
		t.Fatalf("highest descriptor %d does not pass FD_SETSIZE", maxFD)
	}
	pump(t, sel, all, nil, func() bool {
		for i := 0; i < pairs; i++ {
			if string(all[2*i+1].Read().Data()) != strconv.Itoa(i) {
				return false
			}
		}
		return true
	})
}

func pipe(t *testing.T) (r, w int) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

func TestFDConnection(t *testing.T) {
	inR, inW := pipe(t)   // test writes inW, connection reads inR
	outR, outW := pipe(t) // connection writes outW, test reads outR
	defer unix.Close(inW)
	defer unix.Close(outR)
	a := mustAddr(t, fmt.Sprintf("FD:%d:%d", inR, outW), 128)
	c := NewConnection()
	if !c.Create(a) || !c.IsEstablished() {
		t.Fatal("FD create")
	}
	fl, _ := unix.FcntlInt(uintptr(inR), unix.F_GETFL, 0)
	if fl&unix.O_NONBLOCK != 0 {
		t.Error("O_NONBLOCK set on the shared pipe description (E-27)")
	}
	sel := NewSelector()
	defer sel.Free()
	c.AddToSelector(sel)
	unix.Write(inW, []byte("ping"))
	c.Send().Write([]byte("pong"))
	pump(t, sel, []*Connection{c}, nil, func() bool { return c.Read().Used() == 4 && c.Send().Empty() })
	buf := make([]byte, 8)
	if n, _ := unix.Read(outR, buf); string(buf[:n]) != "pong" || string(c.Read().Data()) != "ping" {
		t.Fatalf("FD:r:w transport: read %q, wrote %q", c.Read().Data(), buf[:max(n, 0)])
	}
	// EOF on the read side kills the connection
	unix.Close(inW)
	deadline := time.Now().Add(testDeadline)
	for c.IO() {
		if time.Now().After(deadline) {
			t.Fatal("pipe EOF not reported")
		}
		sel.Select(100000, true)
	}
	c.Free()
	if isOpen(inR) || isOpen(outW) {
		t.Fatal("freeing an FD connection did not close its descriptors")
	}
}

func TestFDListener(t *testing.T) {
	inR, inW := pipe(t)
	defer unix.Close(inW)
	a := mustAddr(t, fmt.Sprintf("FD:%d:-1", inR), 64)
	l := NewListener()
	defer l.Free()
	if !l.Create(a) || l.Finished() {
		t.Fatal("FD listener")
	}
	sel := NewSelector()
	defer sel.Free()
	l.AddToSelector(sel)
	c := NewConnection()
	defer c.Free()
	if n, _ := sel.Select(1000, true); n != 0 || c.Accept(l) {
		t.Fatal("FD listener accepted before input")
	}
	unix.Write(inW, []byte("x"))
	got := acceptAll(t, sel, l, nil, 1)
	defer got[0].Free()
	if !l.Finished() || got[0].Read().Size() != 64 || got[0].Send().Size() != 0 {
		t.Fatal("FD accept")
	}
	sel.Select(1000, true)
	if c.Accept(l) {
		t.Fatal("second FD accept")
	}
}

func TestMisuse(t *testing.T) {
	var c *Connection
	c.Free()
	c.Reset()
	c.DelFromSelector()
	if c.IO() || c.Create(nil) || c.Accept(nil) || c.CreatePair(nil, 1) || c.SetSize(1) || c.Read() != nil || c.IsEstablished() || c.AddToSelector(nil) {
		t.Fatal("nil connection")
	}
	u := NewConnection()
	if u.Create(nil) || u.Create(NewAddress()) || u.Create(mustAddr(t, "IP:80", 1)) || u.Accept(NewListener()) || u.SetSize(1) || u.AddToSelector(NewSelector()) || u.CreatePair(u, 1) {
		t.Fatal("unused connection")
	}
	u.Free()
	u.Free()
	if u.CreatePair(NewConnection(), 1) {
		t.Fatal("freed connection reused")
	}
	var l *Listener
	l.Free()
	l.Reset()
	l.DelFromSelector()
	if l.Create(nil) || l.Finished() || l.AddToSelector(nil) || l.SetFSPerms("1") {
		t.Fatal("nil listener")
	}
	l = NewListener()
	if l.Create(nil) || l.Create(NewAddress()) || l.AddToSelector(NewSelector()) {
		t.Fatal("un-created address accepted by listener")
	}
	l.Free()
	l.Free()
}

// WriteNow sends the send buffer without a select (dcctx's request path);
// on a connection whose peer is gone it reports the failure.
func TestWriteNow(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	if NewConnection().WriteNow() {
		t.Fatal("WriteNow on an unused connection succeeded")
	}
	if !a.CreatePair(b, 64) {
		t.Fatal("create_pair")
	}
	if !a.WriteNow() {
		t.Fatal("WriteNow with nothing to send failed")
	}
	a.Send().Write([]byte("hello"))
	if !a.WriteNow() || a.Send().Used() != 0 {
		t.Fatalf("WriteNow: %d bytes left", a.Send().Used())
	}
	got := make([]byte, 16)
	n, err := unix.Read(b.fd, got)
	if err != nil || string(got[:n]) != "hello" {
		t.Fatalf("peer read %q, %v", got[:n], err)
	}
	b.Reset() // the peer closes
	a.Send().Write([]byte("again"))
	ok := true
	for i := 0; i < 3 && ok; i++ { // the first write may still be taken by the kernel
		ok = a.WriteNow()
		a.Send().Write([]byte("x"))
	}
	if ok {
		t.Fatal("WriteNow to a closed peer kept succeeding")
	}
}

// Detach hands over an established socket with empty buffers, open, and
// leaves the connection unused; anything else keeps its descriptor.
func TestDetach(t *testing.T) {
	a, b := NewConnection(), NewConnection()
	defer a.Free()
	defer b.Free()
	if a.Detach() != -1 {
		t.Fatal("an unused connection detached a descriptor")
	}
	if !a.CreatePair(b, 1024) {
		t.Fatal("CreatePair")
	}
	a.Send().Write([]byte("x"))
	if a.Detach() != -1 || !a.Live() {
		t.Fatal("a connection with unsent bytes detached")
	}
	a.Send().Reset()
	fd := a.Detach()
	if fd < 0 || a.Live() {
		t.Fatalf("Detach = %d, live %v", fd, a.Live())
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("hi")); err != nil {
		t.Fatalf("the detached descriptor: %v", err)
	}
	for i := 0; !b.Read().NotEmpty(); i++ {
		if i == 10 {
			t.Fatal("the peer got nothing in 10 s")
		}
		sel := NewSelectorFdPoll()
		b.AddToSelector(sel)
		sel.Select(1000000, true)
		b.IO()
		b.DelFromSelector()
		sel.Free()
	}
	if got := string(b.Read().Data()); got != "hi" {
		t.Fatalf("peer read %q", got)
	}
}
