// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// gatedNeverBlocks is gatedStore as a store the loops call themselves:
// its hold keeps a loop in the middle of a connection's turn.
type gatedNeverBlocks struct{ gatedStore }

func (gatedNeverBlocks) NeverBlocks() bool { return true }

// sendGatedBatch writes, in one write, more pipelined requests than a turn
// answers (loopBudget + 8, uids from 0) with g's gated GET within the
// first turn, then tail, and waits until the GET is in the store; it
// returns the number of requests.
func sendGatedBatch(t *testing.T, cl *client, g gatedNeverBlocks, tail []byte) int {
	t.Helper()
	n := loopBudget + 8
	var batch []byte
	for i := 0; i < n; i++ {
		op, id := proto.OpHave, "x"
		if i == loopBudget/2 {
			op, id = proto.OpGet, "slow"
		}
		batch = append(batch, request(uint32(i), op, []byte(id))...)
	}
	if _, err := cl.nc.Write(append(batch, tail...)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the GET never reached the store")
	}
	return n
}

// A client that half-closes while its connection waits for another turn
// (it used up its budget on pipelined requests read at once) gets every
// answer and then the end: the loop hears of the shutdown while the
// connection is queued, and the next turn reads up to the end, although
// one of its reads took all there was.
func TestLoopHalfCloseWhileQueued(t *testing.T) {
	watched := make(chan struct{}, 1)
	testHookWatched = func(int) {
		select {
		case watched <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { testHookWatched = nil }) // after the server's end
	c := cache.New(cache.Config{})
	g := gatedNeverBlocks{gatedStore{c.Store(), make(chan struct{}, 1), make(chan struct{})}}
	_, sock := serveT(t, Options{Store: g, Loops: 1})
	cl := dial(t, sock)
	// Answered once: the connection waits in its loop, watched.
	if p := cl.roundTrip(proto.OpHave, []byte("x")); !bytes.Equal(p, []byte{1}) {
		t.Fatalf("HAVE: %x", p)
	}
	select {
	case <-watched:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is not watched by its loop")
	}
	// More pipelined requests than a turn answers, in one write (one
	// read of the loop's takes them all), the gated GET within the
	// first turn.
	n := sendGatedBatch(t, cl, g, nil)
	// One more request and the half-close, while the loop is in that
	// turn: the connection's next turn reads them.
	cl.send(uint32(n), proto.OpHave, []byte("x"))
	if err := cl.nc.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	cl.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i <= n; i++ {
		m, err := cl.rd.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, n+1, err)
		}
		if m.UID != uint32(i) {
			t.Fatalf("answer %d has uid %d", i, m.UID)
		}
	}
	if _, err := cl.rd.ReadMessage(); err != io.EOF {
		t.Fatalf("after the answers: %v, want the end of the stream (the server closes a half-closed connection)", err)
	}
}
