// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// Answers a loop's connection owes before it is closed (pipelined
// requests before a corrupt frame, E-12) that wait for room in a
// goroutine of their own are handed over with the connection when a
// handover begins meanwhile: the successor writes them, none is lost.
func TestOwedAnswersHandedOver(t *testing.T) {
	watched := make(chan int, 1)
	testHookWatched = func(fd int) {
		// A small send buffer: the answers below do not fit.
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 1)
		select {
		case watched <- fd:
		default:
		}
	}
	t.Cleanup(func() { testHookWatched = nil }) // after the server's end
	c := cache.New(cache.Config{})
	_, lf := logCh()
	s, ln, sock := serveLn(t, Options{Store: c.Store(), Loops: 1, Log: lf})
	cl := dial(t, sock)
	cl.roundTrip(proto.OpHave, []byte("x"))
	select {
	case <-watched:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is not watched by its loop")
	}
	// 400 requests and a corrupt frame, read at once (under the
	// reader's buffer), the answers (6000 bytes) over the socket's room.
	const n = 400
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, request(uint32(i), proto.OpHave, []byte("x"))...)
	}
	batch = append(batch, "GET / HTTP/1.0\r\n\r\n"...)
	if _, err := cl.nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	waitConn(t, s, "writing its owed answers from a goroutine", func(cs *connState) bool {
		_, fd := cs.raw.(fdSock)
		return !fd && cs.state.Load() == stateWriting
	})
	passed := catchHandOver(s)
	s.Shutdown(ln)
	var h handed
	select {
	case h = <-passed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection owing answers was closed, not handed over")
	}
	// This process's part of the answers, then the successor's.
	werr := make(chan error, 1)
	go func() { werr <- h.successor() }()
	recvUIDs(t, cl, n)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// A handover that comes while a loop answers pipelined requests followed
// by a corrupt frame (E-38), all read at once, hands the connection over
// with the answers not yet written: the loop meets the frame in the turn
// it gives every connection at the handover, before any read, and the
// answers must not be lost there either.
func TestQueuedAnswersBeforeCorruptFrameHandedOver(t *testing.T) {
	c := cache.New(cache.Config{})
	g := gatedNeverBlocks{gatedStore{c.Store(), make(chan struct{}, 1), make(chan struct{})}}
	_, lf := logCh()
	watched := make(chan struct{}, 2)
	testHookWatched = func(int) { watched <- struct{}{} }
	t.Cleanup(func() { testHookWatched = nil }) // after the server's end
	released := false
	t.Cleanup(func() {
		if !released {
			close(g.release)
		}
	}) // before the server's end
	// Two loops: the connection is held in the one that does not accept
	// (a handover begins once accepting has stopped).
	s, ln, sock := serveLn(t, Options{Store: g, Loops: 2, Log: lf})
	cl := dial(t, sock)
	// Answered twice, the connection goes to the other loop (keep),
	// watched there.
	for i := 0; i < 2; i++ {
		cl.roundTrip(proto.OpHave, []byte("x"))
		select {
		case <-watched:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection is not watched by a loop")
		}
	}
	// More requests than a turn answers, a gated GET in the first turn,
	// then a corrupt frame, in one write.
	n := sendGatedBatch(t, cl, g, []byte("GET / HTTP/1.0\r\n\r\n"))
	passed := catchHandOver(s)
	shut := make(chan struct{})
	go func() { s.Shutdown(ln); close(shut) }()
	for end := time.Now().Add(10 * time.Second); !s.set.HandingOff(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the handover did not begin")
		}
	}
	close(g.release)
	released = true
	var h handed
	select {
	case h = <-passed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was closed with its answers, not handed over")
	}
	<-shut
	if !bytes.HasPrefix(h.in, []byte("GET / ")) {
		t.Errorf("handed over with %q to read, want the corrupt frame (the successor closes the connection on it)", h.in)
	}
	// The successor's part: the answers, which this process did not write.
	if err := h.successor(); err != nil {
		t.Fatal(err)
	}
	recvUIDs(t, cl, n)
}

// handed is a connection passed to a successor: a duplicate of its
// socket, the answers and the request bytes passed with it.
type handed struct {
	nc      net.Conn
	out, in []byte
}

// catchHandOver makes s's coming Shutdown a handover whose successor is
// the returned channel.
func catchHandOver(s *Server) chan handed {
	passed := make(chan handed, 1)
	s.HandOver(func(nc net.Conn, out, in []byte) error {
		f, err := nc.(*net.UnixConn).File()
		if err != nil {
			return err
		}
		dup, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return err
		}
		passed <- handed{dup, append([]byte(nil), out...), append([]byte(nil), in...)}
		return nil
	}, 0)
	return passed
}

// successor writes, as the successor would, the answers h was passed with.
func (h handed) successor() error {
	_, err := h.nc.Write(h.out)
	h.nc.Close()
	return err
}

// recvUIDs reads n answers from cl, uids 0 to n-1.
func recvUIDs(t *testing.T, cl *client, n int) {
	t.Helper()
	cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; i++ {
		m, err := cl.rd.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, n, err)
		}
		if m.UID != uint32(i) {
			t.Fatalf("answer %d has uid %d", i+1, m.UID)
		}
	}
}
