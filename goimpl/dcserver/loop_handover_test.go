// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"io"
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
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: c.Store(), Loops: 1, Log: lf})
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	t.Cleanup(func() { s.Shutdown(ln); <-done })
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
	type handed struct {
		nc  net.Conn
		out []byte
	}
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
		passed <- handed{dup, append([]byte(nil), out...)}
		return nil
	}, 0)
	s.Shutdown(ln)
	var h handed
	select {
	case h = <-passed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection owing answers was closed, not handed over")
	}
	// The successor's part: the answers this process did not write.
	got := make(chan error, 1)
	go func() {
		cl.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < n; i++ {
			m, err := cl.rd.ReadMessage()
			if err != nil {
				got <- err
				return
			}
			if m.UID != uint32(i) {
				got <- io.ErrUnexpectedEOF
				return
			}
		}
		got <- nil
	}()
	if _, err := h.nc.Write(h.out); err != nil {
		t.Fatal(err)
	}
	h.nc.Close()
	if err := <-got; err != nil {
		t.Fatalf("the owed answers, with the successor's part (%d bytes): %v", len(h.out), err)
	}
}
