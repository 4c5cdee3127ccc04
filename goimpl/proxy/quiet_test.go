// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/rawio"
	"github.com/distcache-go/distcache/goimpl/store"
)

type echo struct{}

func (echo) Add(context.Context, []byte, []byte, time.Duration) error { return nil }
func (echo) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	return append(append(dst, "ok:"...), id...), nil
}
func (echo) Remove(context.Context, []byte) error                 { return store.ErrNotFound }
func (echo) Have(context.Context, []byte) error                   { return store.ErrNotFound }
func (echo) Take(context.Context, []byte, []byte) ([]byte, error) { return nil, store.ErrUnsupported }
func (echo) Close() error                                         { return nil }

type nolog struct{}

func (nolog) Printf(string, ...any) {}

func serveEcho(t *testing.T) net.Conn {
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Handler: &store.Handler{Store: echo{}}, Log: nolog{}})
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	t.Cleanup(func() { p.Shutdown(ln, time.Second); <-done })
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, c net.Conn, rd *proto.Reader, id string) {
	t.Helper()
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpGet, Payload: []byte(id)})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	m, err := rd.ReadMessage()
	if err != nil || string(m.Payload) != "ok:"+id {
		t.Fatalf("GET %s: %v %q", id, err, m.Payload)
	}
}

// A local connection kept for quietAfter requests is watched for reading
// only; before, it is watched for both.
func TestKeptConnectionIsQuiet(t *testing.T) {
	before := rawio.QuietCount()
	c := serveEcho(t)
	rd := proto.NewReader(c, proto.WantResponses)
	for i := 0; i < quietAfter-1; i++ {
		get(t, c, rd, "a")
	}
	if n := rawio.QuietCount(); n != before {
		t.Fatalf("after %d requests: %d quiet registrations, want %d", quietAfter-1, n, before)
	}
	get(t, c, rd, "b")
	// The proxy makes it quiet after writing the answer.
	waitFor(t, "a quiet registration", func() bool { return rawio.QuietCount() == before+1 })
	get(t, c, rd, "c") // and it goes on serving
}

// A quiet connection's answers that have to wait for room (the
// application reads them late) are written once it reads.
func TestQuietConnectionWaitsForRoom(t *testing.T) {
	before := rawio.QuietCount()
	c := serveEcho(t)
	rd := proto.NewReader(c, proto.WantResponses)
	for i := 0; i < quietAfter; i++ {
		get(t, c, rd, "a")
	}
	waitFor(t, "a quiet registration", func() bool { return rawio.QuietCount() == before+1 })
	id := string(bytes.Repeat([]byte{'i'}, 64))
	const n = 20000 // about 1.6 MB of answers: far more than the socket holds
	var batch []byte
	for i := 0; i < n; i++ {
		batch, _ = proto.AppendMessage(batch, &proto.Message{UID: uint32(i), Op: proto.OpGet, Payload: []byte(id)})
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(batch); werr <- err }()
	// The proxy fills the socket, and its write waits for room: with the
	// writing edge back.
	waitFor(t, "the write to wait", func() bool { return rawio.QuietCount() == before })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; i++ {
		m, err := rd.ReadMessage()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, n, err)
		}
		if m.UID != uint32(i) || string(m.Payload) != "ok:"+id {
			t.Fatalf("answer %d: uid %d %q", i, m.UID, m.Payload)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}
