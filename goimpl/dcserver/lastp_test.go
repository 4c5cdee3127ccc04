// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// busyClientEnv names the socket on which the test binary, run again as
// a client process (TestBusyClientProcess), asks without a pause.
const busyClientEnv = "DCSERVER_TEST_BUSY_CLIENT"

// Not a test of its own: the busy client of TestHoldLastPParksForGoroutines,
// in a process of its own, so that its waits are not the server's
// process's. It asks until the server or the test ends it.
func TestBusyClientProcess(t *testing.T) {
	sock := os.Getenv(busyClientEnv)
	if sock == "" {
		t.Skip("run by TestHoldLastPParksForGoroutines")
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	req := request(1, proto.OpHave, []byte("x"))
	ans := len(request(1, proto.OpHave, []byte{0}))
	buf := make([]byte, 256)
	for {
		if _, err := syscall.Write(fd, req); err != nil {
			return
		}
		for n := 0; n < ans; {
			k, err := syscall.Read(fd, buf[n:])
			if err != nil || k == 0 {
				return
			}
			n += k
		}
	}
}

// roundTrips counts c's HAVE round trips in d.
func roundTrips(c *client, d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		c.roundTrip(proto.OpHave, []byte("x"))
	}
	return n
}

// bestRoundTrips is the most of three counts over 100 ms.
func bestRoundTrips(c *client) int {
	best := 0
	for i := 0; i < 3; i++ {
		best = max(best, roundTrips(c, 100*time.Millisecond))
	}
	return best
}

// On one P with HoldLastP the loop waits raw, keeping the P, while every
// connection is served by it; once one is served by a goroutine (its
// request came in pieces), the loop parks in the runtime's poller, and
// that connection is answered as promptly as beside an idle loop while
// another process keeps the loop busy. Waiting raw, the loop would let
// the poller run at its ticks only: a round trip per two ticks at best
// (the server's read, then the client's), 50 in 100 ms.
func TestHoldLastPParksForGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c := cache.New(cache.Config{})
	s, sock := serveT(t, Options{Store: c.Store(), HoldLastP: true})
	g := dial(t, sock)
	req := request(9, proto.OpHave, []byte("x"))
	if _, err := g.nc.Write(req[:5]); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); s.set.Count() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a connection whose request came in pieces is still served by the loop")
		}
	}
	if _, err := g.nc.Write(req[5:]); err != nil {
		t.Fatal(err)
	}
	g.recv()
	g.nc.SetDeadline(time.Now().Add(time.Minute))
	plain := bestRoundTrips(g)

	busy := exec.Command(os.Args[0], "-test.run=^TestBusyClientProcess$")
	busy.Env = append(os.Environ(), busyClientEnv+"="+sock)
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Process.Kill(); busy.Wait() })
	ops0 := s.Ops()
	for end := time.Now().Add(10 * time.Second); s.Ops() < ops0+1000; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the busy client process asked nothing")
		}
	}
	ops0 = s.Ops()
	beside := bestRoundTrips(g)
	ops := s.Ops() - ops0 - uint64(3*beside)
	t.Logf("round trips of a goroutine's connection in 100 ms: %d beside an idle loop, %d beside a loop busy with another process (%d of its requests answered meanwhile)", plain, beside, ops)
	if ops < 200 { // a starved busy client (a loaded machine) tests nothing
		t.Fatalf("the loop was not kept busy: %d requests of the other process answered", ops)
	}
	if beside < plain/10 { // waiting raw: at most about 50, against thousands
		t.Fatalf("beside a busy loop on one P, a goroutine's connection made %d round trips in 100 ms, against %d beside an idle one", beside, plain)
	}
}
