// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"net"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// holdServer answers one GET on one connection with data, once release is
// closed; got is closed when the request has arrived.
func holdServer(t *testing.T, data []byte) (target string, got, release chan struct{}) {
	t.Helper()
	path := filepath.Join(fake.ShortTempDir(t), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	got, release = make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		m, err := proto.NewReader(c, proto.WantRequests).ReadMessage()
		if err != nil {
			t.Errorf("hold server: %v", err)
			return
		}
		close(got)
		<-release
		out, err := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: data})
		if err == nil {
			_, err = c.Write(out)
		}
		if err != nil {
			t.Errorf("hold server: %v", err)
		}
	}()
	return "UNIX:" + path, got, release
}

// heldGet starts a GET of the held session on c and returns, once the
// request is at the server, the channel that says whether it got data.
func heldGet(t *testing.T, c *Ctx, got <-chan struct{}, data []byte) <-chan bool {
	t.Helper()
	res := make(chan bool, 1)
	go func() {
		buf := make([]byte, 1024)
		n, ok := c.GetSession([]byte("held"), buf)
		res <- ok && bytes.Equal(buf[:n], data)
	}()
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the request never arrived")
	}
	return res
}

// An exchange waiting in raw mode keeps its P, on one P the only one: the
// runtime must still get it back, for other goroutines (this test's) and
// for a collection's stop of the world, while the answer is withheld.
func TestRawWaitYieldsToGC(t *testing.T) {
	if defaultTransport != TransportCaller {
		t.Skip("raw waits are TransportCaller's")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	data := bytes.Repeat([]byte{0x42}, 300)
	target, got, release := holdServer(t, data)
	var asked atomic.Int32
	c := newCtx(t, target, FlagPersistent|FlagLate, &Options{IOTimeout: 20 * time.Second, ConnectTimeout: 20 * time.Second,
		RawWait: func() bool { asked.Add(1); return true }})
	res := heldGet(t, c, got, data)
	gc := make(chan struct{})
	go func() { runtime.GC(); close(gc) }()
	select {
	case <-gc:
	case ok := <-res:
		t.Fatalf("the GET ended (ok %v) before its answer was released", ok)
	case <-time.After(20 * time.Second):
		t.Fatal("no garbage collection while an exchange waited in raw mode")
	}
	close(release)
	if !<-res {
		t.Fatal("the GET failed after the collection")
	}
	if asked.Load() == 0 {
		t.Fatal("Options.RawWait was never asked")
	}
}

// A raw wait holds the P for a short slice only: a caller whose answer is
// late gives the P back, and the process's other goroutines run on while
// it waits (they used to wait for the runtime's preemption, 10-20 ms at
// a time, so a 1 ms sleep took about 20 ms).
func TestRawWaitGivesThePBack(t *testing.T) {
	if defaultTransport != TransportCaller {
		t.Skip("raw waits are TransportCaller's")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// ticks counts the 1 ms sleeps this goroutine completes while a GET
	// waits 300 ms for its answer.
	ticks := func(raw bool) int {
		data := bytes.Repeat([]byte{0x42}, 300)
		target, got, release := holdServer(t, data)
		c := newCtx(t, target, FlagPersistent|FlagLate, &Options{IOTimeout: 20 * time.Second, ConnectTimeout: 20 * time.Second,
			RawWait: func() bool { return raw }})
		res := heldGet(t, c, got, data)
		n := 0
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); n++ {
			time.Sleep(time.Millisecond)
		}
		close(release)
		if !<-res {
			t.Fatal("the GET failed")
		}
		return n
	}
	// A raw wait that keeps the P completes a few sleeps where a plain
	// one completes hundreds (15 against 275 before the cap). On a
	// loaded machine (load 20, the whole package running) one pair of
	// runs can still differ by 3 to 1 for want of CPU, so a pair is
	// measured again, at most three times, before the test fails.
	var plain, raw int
	for try := 1; try <= 3; try++ {
		plain, raw = ticks(false), ticks(true)
		t.Logf("try %d: 1 ms sleeps in 300 ms: %d during a plain wait, %d during a raw one", try, plain, raw)
		if raw >= plain/3 {
			return
		}
	}
	t.Fatalf("a raw wait kept the P: %d sleeps of 1 ms in 300 ms, against %d during a plain wait", raw, plain)
}
