// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/sessiond"
	"github.com/distcache-go/distcache/goimpl/store"
)

// serveT serves o on a unix socket until the test ends.
func serveT(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	s, _, sock := serveLn(t, o)
	return s, sock
}

// serveLn is serveT that also returns the listener (for Shutdown).
func serveLn(t *testing.T, o Options) (*Server, net.Listener, string) {
	t.Helper()
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := New(o)
	done := make(chan struct{})
	go func() { s.Serve(ln); close(done) }()
	t.Cleanup(func() { s.Shutdown(ln); <-done })
	return s, ln, sock
}

type client struct {
	t  *testing.T
	nc net.Conn
	rd *proto.Reader
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t, nc, proto.NewReader(nc, proto.WantResponses)}
}

func (c *client) send(uid uint32, op proto.Op, payload []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(request(uid, op, payload)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() *proto.Message {
	c.t.Helper()
	m, err := c.rd.ReadMessage()
	if err != nil {
		c.t.Fatalf("reading an answer: %v", err)
	}
	return m
}

func (c *client) roundTrip(op proto.Op, payload []byte) []byte {
	c.t.Helper()
	c.send(9, op, payload)
	return c.recv().Payload
}

// A request the Handler answers by closing loses its own connection only,
// after the answers owed before it; the other connections go on.
func TestCloseIsPerConnection(t *testing.T) {
	c := cache.New(cache.Config{})
	var logs strings.Builder
	var mu sync.Mutex
	_, sock := serveT(t, Options{Store: c.Store(), Log: logFunc(func(f string, a ...any) {
		mu.Lock()
		fmt.Fprintf(&logs, f+"\n", a...)
		mu.Unlock()
	})})
	good, bad := dial(t, sock), dial(t, sock)
	if r := good.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("id"), []byte("data"))); !bytes.Equal(r, []byte{0}) {
		t.Fatalf("add: %x", r)
	}
	// One write: a GET, then a 7-byte ADD.
	w := append(request(1, proto.OpGet, []byte("id")), request(2, proto.OpAdd, make([]byte, 7))...)
	bad.nc.Write(w)
	if m := bad.recv(); m.UID != 1 || string(m.Payload) != "data" {
		t.Fatalf("answer owed before the close: %+v", m)
	}
	if m, err := bad.rd.ReadMessage(); err == nil {
		t.Fatalf("short ADD answered: %+v", m)
	}
	if r := good.roundTrip(proto.OpGet, []byte("id")); string(r) != "data" {
		t.Fatalf("the other connection: %q", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "ADD request shorter than 8 bytes") {
		t.Errorf("close not logged with its reason: %q", logs.String())
	}
}

type logFunc func(string, ...any)

func (f logFunc) Printf(format string, args ...any) { f(format, args...) }

// stalled is a store whose every call waits for its context.
type stalled struct{ store.Store }

func (stalled) Get(ctx context.Context, _, dst []byte) ([]byte, error) {
	<-ctx.Done()
	return dst, fmt.Errorf("stalled: %w", store.ErrUnavailable)
}

func (stalled) Add(ctx context.Context, _, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return fmt.Errorf("stalled: %w", store.ErrUnavailable)
}

// With RequestTimeout a stalled store costs a request that long, answered
// by the Unavailable policy (a miss by default).
func TestRequestTimeout(t *testing.T) {
	_, sock := serveT(t, Options{Store: stalled{}, RequestTimeout: 50 * time.Millisecond})
	cl := dial(t, sock)
	if r := cl.roundTrip(proto.OpGet, []byte("id")); !bytes.Equal(r, []byte{1}) {
		t.Fatalf("GET on a stalled store: %x, want a miss", r)
	}
	if r := cl.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 1000, []byte("id"), []byte("d"))); !bytes.Equal(r, []byte{0x65}) {
		t.Fatalf("ADD on a stalled store: %x, want 65", r)
	}
	_, sock = serveT(t, Options{Store: stalled{}, RequestTimeout: 50 * time.Millisecond, Unavailable: store.AnswerDisconnected})
	if r := dial(t, sock).roundTrip(proto.OpGet, []byte("id")); !bytes.Equal(r, []byte{2}) {
		t.Fatalf("GET with AnswerDisconnected: %x", r)
	}
}

// -minlifetime goes through to the Handler; without Options.Stats the
// Server counts its own hits and misses.
func TestMinLifetimeAndOwnCounters(t *testing.T) {
	clk := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	c := cache.New(cache.Config{Now: now})
	s, sock := serveT(t, Options{Store: c.Store(), MinLifetime: 300 * time.Second})
	cl := dial(t, sock)
	cl.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 500, []byte("short"), []byte("d")))
	mu.Lock()
	clk = clk.Add(299 * time.Second)
	mu.Unlock()
	if r := cl.roundTrip(proto.OpGet, []byte("short")); string(r) != "d" {
		t.Fatalf("a 500 ms session after 299 s with -minlifetime 300: %x", r)
	}
	cl.roundTrip(proto.OpGet, []byte("other"))
	if st := s.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("counters %+v, want 1 hit, 1 miss", st)
	}
	if s.Ops() != 3 {
		t.Fatalf("%d ops, want 3", s.Ops())
	}
}

// Run serves the protocol and sessiond from one store, and on stop
// answers, shuts down and prints the totals.
func TestRunSessiondAndShutdown(t *testing.T) {
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(cache.Config{})
	var info syncBuf
	s := New(Options{Store: c.Store(), Sessiond: udp, Info: &info, Stats: func() Stats {
		return Stats{Sessions: c.NumItems(time.Now())}
	}})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, ln) }()

	u, err := net.DialUDP("udp4", nil, udp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	var key [sessiond.KeySize]byte
	key[0] = 7
	u.Write((&sessiond.Packet{Type: sessiond.TypeNew, Timeout: 60, Key: key, Value: []byte("stunnel")}).Append(nil))
	// The entry is in the shared store under sessiond's id.
	id := append([]byte{sessiond.IDPrefix}, key[:]...)
	cl := dial(t, sock)
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Equal(cl.roundTrip(proto.OpGet, id), []byte("stunnel")) {
		if time.Now().After(deadline) {
			t.Fatal("sessiond NEW never reached the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(info.String(), "Info, shutting down: total operations = ") ||
		!strings.Contains(info.String(), "total sessions = 1,") {
		t.Fatalf("shutdown line: %q", info.String())
	}
	if _, err := udp.Write(nil); err == nil {
		t.Error("sessiond socket still open after Run")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *syncBuf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// A client that sends requests and never reads the answers is closed once
// a write has waited the frame timeout: the write deadline is set when a
// write first has to wait, not before every write.
func TestAnswersNotTakenTimeOut(t *testing.T) {
	c := cache.New(cache.Config{})
	logged := make(chan string, 16)
	_, sock := serveT(t, Options{Store: c.Store(), FrameTimeout: 300 * time.Millisecond, Log: logFunc(func(f string, a ...any) {
		select {
		case logged <- fmt.Sprintf(f, a...):
		default:
		}
	})})
	cl := dial(t, sock)
	big := bytes.Repeat([]byte{0x5a}, 30000)
	if p := cl.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("big"), big)); !bytes.Equal(p, []byte{0}) {
		t.Fatalf("ADD: %x", p)
	}
	// Far more answers than the socket buffers hold, never read.
	get := request(1, proto.OpGet, []byte("big"))
	var batch []byte
	for i := 0; i < 64; i++ {
		batch = append(batch, get...)
	}
	start := time.Now()
	go func() {
		for i := 0; i < 16; i++ {
			if _, err := cl.nc.Write(batch); err != nil {
				return
			}
		}
	}()
	select {
	case msg := <-logged:
		if !strings.Contains(msg, "response not taken timed out") {
			t.Fatalf("logged %q; want the answers not taken to time out", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client taking no answers was not closed")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("closed after %v, before the frame timeout", d)
	}
}
