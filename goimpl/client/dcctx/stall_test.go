// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"github.com/distcache-go/distcache/goimpl/latency"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
)

// A stalled server (stopped, black-holed, accepting and never answering)
// costs the first operation about the bound (100 ms by default; on a
// starved machine up to three), and later ones nothing while the Ctx is
// on probation. Before, each operation waited 3 s (5 s on a new
// connection). stallLimit is what these tests allow an operation that
// waits for a stalled server, and 100 operations on probation together;
// coldLimit the first operation of a context that never had an answer
// (its bound is 1 s). Both stay under the old 3 s: on a machine loaded
// enough that answers took 100 ms (the race detector, load 8) the bound
// had grown to 1 s and the first operation took 1.1-1.5 s.
const (
	stallLimit = 2500 * time.Millisecond
	coldLimit  = 2500 * time.Millisecond
)

// defaults: the Options a C program gets (no environment).
var defaults = &Options{}

// checkStalls runs one operation against a stalled server and 100 more.
// A wait that ended late, this process kept from the CPU for over a
// quarter of the bound, is rightly extended (latency.Late), up to
// latency.MaxExtensions times. So when the test process stalled that long
// during the first operation (redistest.StallWatch: a goroutine's 5 ms
// sleeps ending late), the operation may take that much longer (pinned to
// one CPU beside other tests, a context without an answer yet took 2.8 and
// 4.3 s, its bound 1 s, 1 run in 3). A stall over a quarter of that 1 s
// counts; each extension is allowed the ceiling of the bound,
// MaxTimeoutFactor times the default Timeout (2 s).
func checkStalls(t *testing.T, c *Ctx, limit time.Duration) {
	t.Helper()
	start := time.Now()
	watch, stop := redistest.StallWatch()
	got := c.HasSession([]byte("stalled"))
	stall := watch()
	stop()
	if got != -1 {
		t.Fatalf("has = %d from a stalled server, want -1", got)
	}
	d := time.Since(start)
	t.Logf("the first operation failed after %v (the test process stalled up to %v)", d.Round(time.Millisecond), stall.Round(time.Millisecond))
	if stall > time.Second/latency.LateDivisor {
		limit += latency.MaxExtensions*MaxTimeoutFactor*DefaultTimeout + stall
	}
	if d > limit {
		t.Errorf("the first operation against a stalled server took %v (limit %v)", d, limit)
	}
	if !c.Stalled() {
		t.Fatal("not on probation after a timeout")
	}
	start = time.Now()
	for i := 0; i < 100; i++ {
		if err := c.Do(t.Context(), proto.OpGet, []byte("stalled"), nil, 0, func([]byte) {}); !errors.Is(err, ErrStalled) {
			t.Fatalf("operation %d on probation: %v, want ErrStalled", i, err)
		}
	}
	if _, ok := c.GetSession([]byte("stalled"), nil); ok {
		t.Fatal("get succeeded on probation")
	}
	if d := time.Since(start); d > stallLimit {
		t.Errorf("101 operations on probation took %v (limit %v)", d, stallLimit)
	}
}

// A listener that accepts and reads, never answering; then answers again.
func TestStallSilentServer(t *testing.T) {
	for _, nw := range networks {
		for _, flags := range []uint32{0, FlagPersistent} {
			t.Run(fmt.Sprintf("%s/flags=%#x", nw, flags), func(t *testing.T) {
				s := fake.Start(t, nw, "", nil)
				c := newCtx(t, s.Target, flags, defaults)
				if c.HasSession([]byte("x")) != 0 {
					t.Fatal("has before the stall")
				}
				s.SetMode(fake.ModeSilent)
				checkStalls(t, c, stallLimit)
				s.SetMode(fake.ModeNormal)
				fake.WaitFor(t, "the probation to end", func() bool { return !c.Stalled() })
				if c.HasSession([]byte("x")) != 0 {
					t.Fatal("has after the server answers again")
				}
			})
		}
	}
}

// A unix listener that never accepts: the connect succeeds into its
// backlog and the request is written, but nothing comes back. Once its
// backlog is full, connects fail at once (EAGAIN): no wait, no probation.
func TestStallUnixBacklog(t *testing.T) {
	path := neverAccepts(t, 2)
	for _, flags := range []uint32{0, FlagPersistent | FlagLate} {
		checkStalls(t, newCtx(t, "UNIX:"+path, flags, defaults), coldLimit)
	}
	// fill the rest of the backlog
	for i := 0; ; i++ {
		s, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(s)
		if err := syscall.Connect(s, &syscall.SockaddrUnix{Name: path}); err == syscall.EAGAIN {
			break
		} else if err != nil || i > 100 {
			t.Fatalf("filling the backlog: %v after %d connections", err, i)
		}
	}
	c := newCtx(t, "UNIX:"+path, 0, defaults)
	start := time.Now()
	if c.HasSession([]byte("x")) != -1 {
		t.Fatal("has through a full backlog")
	}
	if d := time.Since(start); d > stallLimit || c.Stalled() {
		t.Fatalf("a full unix backlog cost %v (stalled %v), want a prompt failure", d, c.Stalled())
	}
}

// neverAccepts returns the path of a unix listener with the given
// backlog that never accepts, closed at the end of the test.
func neverAccepts(t *testing.T, backlog int) string {
	t.Helper()
	path := filepath.Join(fake.ShortTempDir(t), "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	return path
}

// blackHole returns a TCP target whose SYNs the kernel drops (a listener
// with a full accept queue), or skips.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip("no socket:", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	// Fill the accept queue (backlog 0 admits one, sometimes two).
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp4", addr.String(), time.Second)
		if err != nil {
			return "IP:" + addr.String()
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel did not drop SYNs to a full accept queue")
	return ""
}

// A TCP connect that is never answered.
func TestStallTCPBlackHole(t *testing.T) {
	target := blackHole(t)
	start := time.Now()
	if c, err := New(target, FlagPersistent, defaults); err == nil {
		c.Close()
		t.Fatal("New connected to a black hole")
	}
	if d := time.Since(start); d > coldLimit {
		t.Errorf("New took %v to give up on a black hole (limit %v)", d, coldLimit)
	}
	for _, flags := range []uint32{0, FlagPersistent | FlagLate} {
		checkStalls(t, newCtx(t, target, flags, defaults), coldLimit)
	}
}

// procState returns the state letter of process pid (/proc/PID/stat).
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// The real thing: dc_server, and dc_client in front of it, stopped with
// SIGSTOP and continued.
func TestStallSIGSTOP(t *testing.T) {
	srvBin, cliBin := toolPath(t, "dc_server"), toolPath(t, "dc_client")
	dir := fake.ShortTempDir(t)
	srv, cli := filepath.Join(dir, "srv"), filepath.Join(dir, "cli")
	procs := map[string]*struct {
		sock string
		pid  int
	}{
		"dc_server": {srv, startTool(t, srv, srvBin, "-listen", "UNIX:"+srv).Process.Pid},
		"dc_client": {cli, startTool(t, cli, cliBin, "-listen", "UNIX:"+cli, "-server", "UNIX:"+srv).Process.Pid},
	}
	for _, name := range []string{"dc_server", "dc_client"} {
		p := procs[name]
		for _, flags := range []uint32{0, FlagPersistent} {
			t.Run(fmt.Sprintf("%s/flags=%#x", name, flags), func(t *testing.T) {
				c := newCtx(t, "UNIX:"+p.sock, flags, defaults)
				fake.WaitFor(t, "an answer", func() bool { return c.HasSession([]byte("x")) == 0 })
				if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				fake.WaitFor(t, name+" to stop", func() bool { return procState(p.pid) == 'T' })
				stopped := true
				defer func() {
					if stopped {
						syscall.Kill(p.pid, syscall.SIGCONT)
					}
				}()
				checkStalls(t, c, stallLimit)
				syscall.Kill(p.pid, syscall.SIGCONT)
				stopped = false
				start := time.Now()
				fake.WaitFor(t, "the probation to end", func() bool { return !c.Stalled() })
				t.Logf("back %v after SIGCONT", time.Since(start).Round(time.Millisecond))
				// The continued process may still be catching up (its
				// first answer late enough for another timeout, load 8).
				fake.WaitFor(t, "an answer after SIGCONT", func() bool { return c.HasSession([]byte("x")) == 0 })
			})
		}
	}
}

// A context whose answers have come for less than a Window (five seconds)
// waits for a slow one as a new context does (1 s), not ten times its
// first answers (the 100 ms floor): Apache children forked in a graceful
// restart, their first answers fast, took a loaded dc_client's next
// answer, over 100 ms late, for a stall and went on probation.
func TestYoungContextWaitsForASlowAnswer(t *testing.T) {
	for _, nw := range networks {
		for _, flags := range []uint32{0, FlagPersistent} {
			t.Run(fmt.Sprintf("%s/flags=%#x", nw, flags), func(t *testing.T) {
				s := fake.Start(t, nw, "", nil)
				c := newCtx(t, s.Target, flags, defaults)
				for i := 0; i < 3; i++ {
					if c.HasSession([]byte("x")) != 0 {
						t.Fatal("has from a fast server")
					}
				}
				s.Delay.Store(int64(300 * time.Millisecond))
				start := time.Now()
				if got := c.HasSession([]byte("x")); got != 0 || c.Stalled() {
					t.Fatalf("an answer 300 ms late (waited %v): has %d, on probation %v; want 0, not on probation",
						time.Since(start).Round(time.Millisecond), got, c.Stalled())
				}
			})
		}
	}
}

// A timed-out exchange says where its bytes were: a server that read the
// request and kept silent leaves none anywhere; one that never accepted
// leaves the whole request in the socket, sent and not read; and the
// probation line carries the same. (TransportCaller only: TransportNet
// gives Go's own timeout error.)
func TestTimeoutSaysWhereTheBytesWere(t *testing.T) {
	if defaultTransport != TransportCaller {
		t.Skip("the nal link's timeout")
	}
	id := []byte("where")
	check := func(t *testing.T, target string, want func(silenceError) bool) {
		var log lines
		c := newCtx(t, target, FlagPersistent, &Options{IOTimeout: 200 * time.Millisecond, Logf: log.printf})
		err := c.Do(t.Context(), proto.OpHave, id, nil, 0, func([]byte) {})
		var se *silenceError
		if !errors.As(err, &se) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Do = %v, want a silenceError, an os.ErrDeadlineExceeded", err)
		}
		if !want(*se) {
			t.Fatalf("the bytes were %+v (%v)", *se, err)
		}
		if l := log.about(c.addr); len(l) != 1 || !strings.Contains(l[0], se.where()) {
			t.Fatalf("probation lines %q, want one with %q", l, se.where())
		}
	}
	t.Run("silent", func(t *testing.T) {
		s := fake.Start(t, "unix", "", nil)
		s.SetMode(fake.ModeSilent)
		check(t, s.Target, func(e silenceError) bool { return e == silenceError{} })
	})
	t.Run("never accepted", func(t *testing.T) {
		path := neverAccepts(t, 4)
		// (on a unix socket SIOCOUTQ counts the memory the request holds)
		check(t, "UNIX:"+path, func(e silenceError) bool { return e.unsent == 0 && e.unread > 0 && e.waiting == 0 })
	})
}
