// SPDX-License-Identifier: Apache-2.0

package proxy_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/store"
)

// echoStore answers every Get with "ok:" + id, and counts the Adds it sees.
type echoStore struct {
	mu   sync.Mutex
	adds int
}

func (s *echoStore) Add(context.Context, []byte, []byte, time.Duration) error {
	s.mu.Lock()
	s.adds++
	s.mu.Unlock()
	return nil
}
func (s *echoStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	return append(append(dst, "ok:"...), id...), nil
}
func (s *echoStore) Remove(context.Context, []byte) error { return store.ErrNotFound }
func (s *echoStore) Have(context.Context, []byte) error   { return store.ErrUnavailable }
func (s *echoStore) Take(context.Context, []byte, []byte) ([]byte, error) {
	return nil, store.ErrUnsupported
}
func (s *echoStore) Close() error { return nil }

type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(format + "\n")
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, o proxy.Options) string {
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(o)
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	t.Cleanup(func() { p.Shutdown(ln, time.Second); <-done })
	return sock
}

func roundTrip(t *testing.T, c net.Conn, rd *proto.Reader, uid uint32, op proto.Op, payload []byte) *proto.Message {
	t.Helper()
	b, err := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	m, err := rd.ReadMessage()
	if err != nil {
		t.Fatalf("%v uid %d: %v", op, uid, err)
	}
	return m
}

func TestServesFromTheStore(t *testing.T) {
	st := &echoStore{}
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: st, Unavailable: store.AnswerEmpty}})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := proto.NewReader(c, proto.WantResponses)
	if m := roundTrip(t, c, rd, 7, proto.OpGet, []byte("abc")); m.UID != 7 || !m.Response || string(m.Payload) != "ok:abc" {
		t.Fatalf("GET: %+v", m)
	}
	if m := roundTrip(t, c, rd, 8, proto.OpHave, []byte("abc")); len(m.Payload) != 0 {
		t.Fatalf("HAVE of an unavailable store: %x, want empty", m.Payload)
	}
	if m := roundTrip(t, c, rd, 9, proto.OpAdd, proto.AppendAddRequest(nil, 1<<31, []byte("id"), []byte("d"))); !bytes.Equal(m.Payload, []byte{proto.AddErrTimeoutRange}) {
		t.Fatalf("ADD of a lifetime over 7 days: %x, want 66", m.Payload)
	}
	if st.adds != 0 {
		t.Errorf("the store saw %d invalid adds", st.adds)
	}
}

// A request the protocol answers by closing closes that client only.
func TestBadRequestClosesOnlyItsClient(t *testing.T) {
	log := &logLines{}
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: &echoStore{}}, Log: log})
	good, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	grd := proto.NewReader(good, proto.WantResponses)
	roundTrip(t, good, grd, 1, proto.OpGet, []byte("x"))
	bad, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpAdd, Payload: []byte("short")})
	bad.Write(b)
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := bad.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("the client that sent a 5-byte ADD: read %d bytes, %v; want EOF", n, err)
	}
	if m := roundTrip(t, good, grd, 2, proto.OpGet, []byte("y")); string(m.Payload) != "ok:y" {
		t.Fatalf("the other client: %q", m.Payload)
	}
	if !strings.Contains(log.String(), "closing local client") {
		t.Errorf("not logged: %q", log.String())
	}
}

func TestIdle(t *testing.T) {
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: &echoStore{}}, Idle: 100 * time.Millisecond})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, proto.NewReader(c, proto.WantResponses), 1, proto.OpGet, []byte("x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle client with Idle 100ms: %v, want EOF", err)
	}
}

// A client that sends requests and never reads its answers is dropped once
// an answer has waited the write timeout; the deadline is set when a write
// first has to wait, not before every write.
func TestAnswersNotTakenTimeOut(t *testing.T) {
	t.Cleanup(proxy.SetClientWriteTimeout(300 * time.Millisecond))
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: &echoStore{}}, Log: new(logLines)})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var batch []byte
	for i := 0; i < 1000; i++ {
		batch, _ = proto.AppendMessage(batch, &proto.Message{UID: uint32(i), Op: proto.OpGet, Payload: bytes.Repeat([]byte{'x'}, 64)})
	}
	failed := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(batch); err != nil {
				failed <- err
				return
			}
		}
	}()
	select {
	case <-failed: // the proxy closed the connection
	case <-time.After(10 * time.Second):
		t.Fatal("a client taking no answers was not dropped")
	}
}
