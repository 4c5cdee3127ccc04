// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/internal/waittest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

func unhexT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readNow reads what has arrived on c without waiting for more.
func readNow(t *testing.T, c *client) []byte {
	t.Helper()
	rc, err := c.nc.(syscallConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n := 0
	rc.Read(func(fd uintptr) bool {
		k, err := syscall.Read(int(fd), buf)
		if err == nil && k > 0 {
			n = k
		}
		return true
	})
	return buf[:n]
}

type syscallConn interface {
	SyscallConn() (syscall.RawConn, error)
}

// subscribeT subscribes a new connection, checking the frames byte by
// byte: the probe's answer, the subscription and its answer.
func subscribeT(t *testing.T, sock string) *client {
	t.Helper()
	sub := dial(t, sock)
	if r := sub.roundTrip(proto.OpGet, proto.FeaturesID); proto.ParseFeatures(r)&proto.FeatureNotify == 0 {
		t.Fatalf("features: % x", r)
	}
	req := request(7, proto.OpSubscribe, nil)
	if want := unhexT(t, "00110000 00 00000007 00 05 01 0000"); !bytes.Equal(req, want) {
		t.Fatalf("SUBSCRIBE frame % x, want % x", req, want)
	}
	sub.nc.Write(req)
	ans := make([]byte, 15)
	if _, err := io.ReadFull(sub.nc, ans); err != nil {
		t.Fatal(err)
	}
	if want := unhexT(t, "00110000 01 00000007 00 05 01 0001 00"); !bytes.Equal(ans, want) {
		t.Fatalf("SUBSCRIBE answer % x, want % x", ans, want)
	}
	return sub
}

// notice is the frame of the n-th notice of id.
func notice(n uint32, id string) []byte {
	b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: n, Op: proto.OpNotice, Payload: []byte(id)})
	return b
}

func eachMode(t *testing.T, f func(t *testing.T, loops int)) {
	t.Run("loops", func(t *testing.T) { f(t, 0) })
	t.Run("goroutines", func(t *testing.T) { f(t, -1) })
}

// A REMOVE or TAKE, found or not, is noticed to every subscriber before
// it is answered: once the remover has its answer, the notice is in the
// subscriber's socket.
func TestNoticeBeforeAnswer(t *testing.T) {
	eachMode(t, func(t *testing.T, loops int) {
		c := cache.New(cache.Config{})
		s, sock := serveT(t, Options{Store: c.Store(), Notify: true, Loops: loops,
			Features: func() uint32 { return proto.FeatureTake }})
		subs := []*client{subscribeT(t, sock), subscribeT(t, sock)}
		if n := s.Subscribers(); n != 2 {
			t.Fatalf("%d subscribers, want 2", n)
		}
		cl := dial(t, sock)
		for _, id := range []string{"a", "b"} {
			if r := cl.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte(id), []byte("data"))); !bytes.Equal(r, []byte{0}) {
				t.Fatalf("add: %x", r)
			}
		}
		if r := cl.roundTrip(proto.OpGet, []byte("a")); string(r) != "data" {
			t.Fatalf("get: %q", r) // a GET sends no notice
		}
		steps := []struct {
			op  proto.Op
			id  string
			ans string
		}{{proto.OpRemove, "a", "\x00"}, {proto.OpTake, "b", "data"}, {proto.OpRemove, "missing", "\x01"}}
		for i, st := range steps {
			if r := cl.roundTrip(st.op, []byte(st.id)); string(r) != st.ans {
				t.Fatalf("%v %s: %q", st.op, st.id, r)
			}
			for _, sub := range subs {
				if got, want := readNow(t, sub), notice(uint32(i+1), st.id); !bytes.Equal(got, want) {
					t.Fatalf("after the answer to %v %s the subscriber has % x, want % x", st.op, st.id, got, want)
				}
			}
		}
		// The first notice's bytes, spelled out.
		if want := unhexT(t, "00110000 01 00000001 00 06 01 0001 61"); !bytes.Equal(notice(1, "a"), want) {
			t.Fatalf("notice frame % x", notice(1, "a"))
		}
	})
}

// Without Notify the server announces no such feature and closes a
// connection that subscribes, as a 1.5 server does.
func TestNoNotifyClosesSubscribe(t *testing.T) {
	c := cache.New(cache.Config{})
	_, sock := serveT(t, Options{Store: c.Store(), Features: func() uint32 { return proto.FeatureTake }})
	cl := dial(t, sock)
	if r := cl.roundTrip(proto.OpGet, proto.FeaturesID); proto.ParseFeatures(r) != proto.FeatureTake {
		t.Fatalf("features: % x", r)
	}
	cl.send(1, proto.OpSubscribe, nil)
	expectEnd(t, cl)
}

// A subscription with a payload, or followed by anything, and a
// subscriber that sends a byte later, lose their connection.
func TestMalformedSubscription(t *testing.T) {
	eachMode(t, func(t *testing.T, loops int) {
		c := cache.New(cache.Config{})
		s, sock := serveT(t, Options{Store: c.Store(), Notify: true, Loops: loops, Log: logFunc(func(string, ...any) {})})
		cl := dial(t, sock)
		cl.send(1, proto.OpSubscribe, []byte("x"))
		expectClosed(t, cl)
		cl = dial(t, sock)
		cl.nc.Write(append(request(1, proto.OpSubscribe, nil), request(2, proto.OpGet, []byte("id"))...))
		expectClosed(t, cl)
		sub := subscribeT(t, sock)
		waittest.For(t, "one subscriber", func() bool { return s.Subscribers() == 1 })
		sub.nc.Write(request(3, proto.OpGet, []byte("id")))
		expectClosed(t, sub)
		waittest.For(t, "no subscriber", func() bool { return s.Subscribers() == 0 })
	})
}

// A subscriber that does not take its notices is closed once they pass
// the backlog; the removers are answered throughout.
func TestSlowSubscriberDropped(t *testing.T) {
	eachMode(t, func(t *testing.T, loops int) {
		c := cache.New(cache.Config{})
		s, sock := serveT(t, Options{Store: c.Store(), Notify: true, Loops: loops, NoticeBacklog: 4096,
			Log: logFunc(func(string, ...any) {})})
		sub := subscribeT(t, sock)
		// Notices of 78 bytes: the socket buffers hold some thousands.
		removeUntilDropped(t, s, dial(t, sock), 20000, nil)
		// Its end comes after what its socket holds.
		sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, sub.nc); err != nil {
			t.Fatalf("the dropped subscriber's connection: %v", err)
		}
	})
}

// removeUntilDropped sends REMOVEs of a missing 64-byte id through cl, in
// rounds of 100 (each answered, then after called when not nil), until s
// has no subscriber; more than rounds of them fail the test.
func removeUntilDropped(t *testing.T, s *Server, cl *client, rounds int, after func()) {
	t.Helper()
	id := bytes.Repeat([]byte("i"), proto.MaxIDLen)
	var batch []byte
	for i := range 100 {
		batch = append(batch, request(uint32(i), proto.OpRemove, id)...)
	}
	for round := 0; s.Subscribers() > 0; round++ {
		if round == rounds {
			t.Fatalf("the subscriber was not dropped within %d notices", rounds*100)
		}
		cl.nc.Write(batch)
		for range 100 {
			if m := cl.recv(); !bytes.Equal(m.Payload, []byte{1}) {
				t.Fatalf("remove: % x", m.Payload)
			}
		}
		if after != nil {
			after()
		}
	}
}

// Shutdown closes the subscribers.
func TestShutdownClosesSubscribers(t *testing.T) {
	c := cache.New(cache.Config{})
	s, ln, sock := serveLn(t, Options{Store: c.Store(), Notify: true})
	sub := subscribeT(t, sock)
	s.Shutdown(ln)
	sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, sub.nc); err != nil {
		t.Fatalf("subscriber at shutdown: %v", err)
	}
}

// expectClosed waits for the server to close c, which it may do with
// bytes of c's unread (a reset).
func expectClosed(t *testing.T, c *client) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %v, want the end of the stream", err)
	}
}

// Subscribers leave the connection limits, so they have bounds of their
// own: at most MaxConns of them (a further subscription is closed
// unanswered), and the notices waiting for them count against
// ConnMemory with the other connections' buffers.
func TestSubscribersBounded(t *testing.T) {
	eachMode(t, func(t *testing.T, loops int) {
		c := cache.New(cache.Config{})
		s, sock := serveT(t, Options{Store: c.Store(), Notify: true, Loops: loops, MaxConns: 2,
			Log: logFunc(func(string, ...any) {})})
		subscribeT(t, sock)
		subscribeT(t, sock)
		extra := dial(t, sock)
		if r := extra.roundTrip(proto.OpGet, proto.FeaturesID); proto.ParseFeatures(r)&proto.FeatureNotify == 0 {
			t.Fatalf("features: % x", r)
		}
		extra.send(1, proto.OpSubscribe, nil)
		expectClosed(t, extra)
		if n := s.Subscribers(); n != 2 {
			t.Fatalf("%d subscribers at MaxConns 2", n)
		}
		// A connection that is not a subscriber is still served.
		if r := dial(t, sock).roundTrip(proto.OpRemove, []byte("id")); !bytes.Equal(r, []byte{1}) {
			t.Fatalf("remove: % x", r)
		}
	})
}

func TestSubscriberBacklogInConnMemory(t *testing.T) {
	eachMode(t, func(t *testing.T, loops int) {
		c := cache.New(cache.Config{})
		s, sock := serveT(t, Options{Store: c.Store(), Notify: true, Loops: loops, ConnMemory: 64 << 10,
			NoticeBacklog: 64 << 20, Log: logFunc(func(string, ...any) {})})
		sub := subscribeT(t, sock)
		// 78-byte notices: past the socket buffers (some thousands), the
		// 64 KiB budget is reached after some hundreds more, long before
		// the 64 MiB backlog (860 000).
		peak := int64(0)
		removeUntilDropped(t, s, dial(t, sock), 2000, func() { peak = max(peak, s.connMem.Load()) })
		if peak > 64<<10+4096 {
			t.Errorf("connections held %d bytes, over the 64 KiB budget", peak)
		}
		if n := s.connMem.Load(); n != 0 {
			t.Errorf("%d bytes still charged once the subscriber is gone", n)
		}
		sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, sub.nc)
	})
}
