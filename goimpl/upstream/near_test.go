// SPDX-License-Identifier: Apache-2.0

package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/dcserver"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

// nearServer is an in-process dc_server over its own cache, announcing
// notices (Notify) unless plain.
type nearServer struct {
	s    *dcserver.Server
	c    *cache.Cache // its store
	ln   net.Listener
	done chan struct{}
	path string
}

func startNearServer(t *testing.T, path string, notify bool) *nearServer {
	t.Helper()
	return startNearServerWith(t, path, notify, cache.Config{})
}

func startNearServerWith(t *testing.T, path string, notify bool, cfg cache.Config) *nearServer {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var features func() uint32
	if notify {
		features = func() uint32 { return proto.FeatureTake }
	}
	c := cache.New(cfg)
	ns := &nearServer{s: dcserver.New(dcserver.Options{Store: c.Store(), Notify: notify,
		Features: features, Log: &testLog{}, Info: &bytes.Buffer{}}), c: c, ln: ln, done: make(chan struct{}), path: path}
	go func() { ns.s.Serve(ln); close(ns.done) }()
	t.Cleanup(ns.stop)
	return ns
}

func (ns *nearServer) stop() {
	select {
	case <-ns.done:
		return
	default:
	}
	ns.s.Shutdown(ns.ln)
	<-ns.done
}

// dials records the connections an Upstream makes to one server.
type dials struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *dials) server(name, path string) upstream.Server {
	return upstream.Server{Name: name, Dial: func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "unix", path)
		if err == nil {
			d.mu.Lock()
			d.conns = append(d.conns, c)
			d.mu.Unlock()
		}
		return c, err
	}}
}

func (d *dials) n() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// nearOn opens an Upstream with a near cache to servers and waits until
// its subscription is live.
func nearOn(t *testing.T, servers ...upstream.Server) (*upstream.Near, *upstream.Upstream) {
	t.Helper()
	u := open(t, upstream.Options{Servers: servers, Log: &testLog{}, Retry: 50 * time.Millisecond})
	n := upstream.NewNear(u, u, 1000)
	waitUp(t, u)
	eventually(t, 10*time.Second, "a live subscription", func() bool { return u.NearState().Live() })
	return n, u
}

var bg = context.Background()

func mustAdd(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.Add(bg, []byte(id), []byte("data-"+id), time.Minute); err != nil {
		t.Fatalf("add %s: %v", id, err)
	}
}

// getFrom reads id through s: its data, or "" for a miss.
func getFrom(t *testing.T, s store.Store, id string) string {
	t.Helper()
	d, err := s.Get(bg, []byte(id), nil)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return string(d)
}

// A session this process added is answered without the server; a REMOVE
// or TAKE through another process is seen by the next GET here, as soon
// as the remover has its answer.
func TestNearRemovalThroughAnotherClient(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	var d dials
	a, _ := nearOn(t, d.server("s", ns.path))
	b, _ := nearOn(t, d.server("s", ns.path))
	for _, op := range []string{"remove", "take"} {
		id := "sess-" + op
		mustAdd(t, b, id)
		before := ns.s.Ops()
		if got := getFrom(t, b, id); got != "data-"+id {
			t.Fatalf("get: %q", got)
		}
		if ns.s.Ops() != before || b.Stats().Hits == 0 {
			t.Fatalf("the GET went to the server (%d ops), near stats %+v", ns.s.Ops()-before, b.Stats())
		}
		var err error
		if op == "remove" {
			err = a.Remove(bg, []byte(id))
		} else {
			_, err = a.Take(bg, []byte(id), nil)
		}
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if got := getFrom(t, b, id); got != "" {
			t.Fatalf("after a %s elsewhere, GET here answered %q", op, got)
		}
	}
	// The remover's own copy goes too.
	mustAdd(t, a, "own")
	if err := a.Remove(bg, []byte("own")); err != nil || getFrom(t, a, "own") != "" {
		t.Fatalf("own remove: %v", err)
	}
}

// A near copy lives no longer than the ADD's lifetime (counted from when
// it was sent, less a millisecond): once the server's copy has expired,
// a GET misses. Without expiry the near copy would be answered for ever.
func TestNearExpiry(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	n, _ := nearOn(t, unixServer("s", ns.path))
	start := time.Now()
	if err := n.Add(bg, []byte("short"), []byte("d"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if getFrom(t, n, "short") != "d" || (n.Stats().Hits == 0 && time.Since(start) < 250*time.Millisecond) {
		t.Fatalf("a fresh copy was not answered from the near cache: %+v", n.Stats())
	}
	eventually(t, 10*time.Second, "the session to expire", func() bool { return getFrom(t, n, "short") == "" })
	if e := time.Since(start); e < 290*time.Millisecond {
		t.Fatalf("gone after %v", e)
	}
}

// Losing the subscription forgets every copy, and nothing is answered
// from the near cache until it is back.
func TestNearSubscriptionLossFlushes(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	var d dials
	n, u := nearOn(t, d.server("s", ns.path))
	mustAdd(t, n, "x")
	if getFrom(t, n, "x") == "" || n.Stats().Hits != 1 {
		t.Fatalf("no near hit: %+v", n.Stats())
	}
	// The second connection is the subscription's: cut it.
	eventually(t, 10*time.Second, "two connections", func() bool { return d.n() >= 2 })
	d.mu.Lock()
	d.conns[1].Close()
	d.mu.Unlock()
	eventually(t, 10*time.Second, "the subscription's loss", func() bool { return n.Stats().Flushes > 0 })
	st := n.Stats()
	if st.Sessions != 0 {
		t.Fatalf("%d sessions kept after the loss", st.Sessions)
	}
	// The copy is gone: the GET asks the server.
	eventually(t, 10*time.Second, "a new subscription", func() bool { return u.NearState().Live() })
	if getFrom(t, n, "x") != "data-x" || n.Stats().Hits != st.Hits {
		t.Fatalf("after the loss the GET did not go to the server: %+v", n.Stats())
	}
}

// A restarted server (a new connection, a new subscription) and a
// failover to another server flush the near cache.
func TestNearRestartAndFailover(t *testing.T) {
	dir := t.TempDir()
	first := startNearServer(t, filepath.Join(dir, "a"), true)
	second := startNearServer(t, filepath.Join(dir, "b"), true)
	var d dials
	n, u := nearOn(t, d.server("a", first.path), d.server("b", second.path))
	mustAdd(t, n, "x")
	if getFrom(t, n, "x") == "" {
		t.Fatal("no copy")
	}
	first.stop()
	// Requests go to b, which does not have x.
	eventually(t, 10*time.Second, "requests on the second server", func() bool {
		return u.NearState().Live() && getFrom(t, n, "x") == ""
	})
	if n.Stats().Flushes == 0 {
		t.Fatalf("no flush: %+v", n.Stats())
	}
	mustAdd(t, n, "y")
	if getFrom(t, n, "y") == "" {
		t.Fatal("no copy on the second server")
	}
	// a restarts, empty: requests go back to it, and y is not there.
	restarted := startNearServer(t, first.path, true)
	eventually(t, 10*time.Second, "requests back on the first server", func() bool {
		return getFrom(t, n, "y") == "" && u.NearState().Live()
	})
	_ = restarted
}

// A server that does not announce notices (a 1.5 server, or ours
// without them) gets no subscription and no second connection: requests
// see only the 1.5 operations, and every GET goes to it.
func TestNearOffWithoutTheFeature(t *testing.T) {
	var mu sync.Mutex
	var ops []proto.Op
	probed := false
	h := &store.Handler{Store: memStore()} // no Features: the 1.5 protocol
	ps := prototest.Serve(t, filepath.Join(t.TempDir(), "s"), func(m *proto.Message) ([]byte, bool) {
		mu.Lock()
		ops = append(ops, m.Op)
		probed = probed || proto.IsFeaturesID(m.Payload)
		mu.Unlock()
		out, err := h.Handle(bg, m, nil)
		return out, err == nil
	})
	var d dials
	u := open(t, upstream.Options{Servers: []upstream.Server{d.server("s", ps.Path)}, Log: &testLog{}, Retry: 20 * time.Millisecond})
	n := upstream.NewNear(u, u, 1000)
	waitUp(t, u)
	mustAdd(t, n, "x")
	for range 3 {
		if getFrom(t, n, "x") != "data-x" {
			t.Fatal("get")
		}
	}
	// Once the probe is answered without the feature, no second
	// connection comes, and nothing but 1.5 operations.
	eventually(t, 10*time.Second, "the feature probe", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return probed
	})
	for range 3 {
		if getFrom(t, n, "x") != "data-x" {
			t.Fatal("get")
		}
	}
	if d.n() != 1 {
		t.Fatalf("%d connections to a server without notices", d.n())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, op := range ops {
		if !op.Valid() {
			t.Fatalf("%v sent to a server without the feature", op)
		}
	}
	if st := n.Stats(); st.Hits != 0 || u.NearState().Live() {
		t.Fatalf("near cache on: %+v", st)
	}
}

// hostile is a fake server that announces notices, subscribes, and then
// sends bad on the subscription; it reports the subscription
// connection's bytes and whether the client closed it.
func hostile(t *testing.T, bad []byte) (path string, got chan []byte, closed chan struct{}) {
	path = filepath.Join(t.TempDir(), "h")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got, closed = make(chan []byte, 4), make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := proto.NewReader(c, proto.WantRequests)
				var seen []byte
				for {
					m, err := rd.ReadMessage()
					if err != nil {
						return
					}
					seen, _ = proto.AppendMessage(seen, m)
					var ans []byte
					switch {
					case m.Op == proto.OpGet && proto.IsFeaturesID(m.Payload):
						ans = proto.AppendFeatures(nil, proto.FeatureNotify)
					case m.Op == proto.OpSubscribe:
						ans = []byte{0}
					case m.Op == proto.OpGet:
						ans = []byte{1}
					default:
						ans = []byte{0}
					}
					b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: m.UID, Op: m.Op, Payload: ans})
					c.Write(b)
					if m.Op == proto.OpSubscribe {
						got <- seen
						c.Write(bad)
						c.SetReadDeadline(time.Now().Add(10 * time.Second))
						var ne net.Error
						if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
							closed <- struct{}{}
						}
						return
					}
				}
			}()
		}
	}()
	return path, got, closed
}

// The subscription's frames, byte for byte; and a malformed notice
// closes the subscription (the near cache stays off).
func TestNearHostileNotices(t *testing.T) {
	notice := func(uid uint32, op proto.Op, id string) []byte {
		b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: uid, Op: op, Payload: []byte(id)})
		return b
	}
	cases := map[string][]byte{
		"out of sequence": notice(2, proto.OpNotice, "x"),
		"another op":      notice(1, proto.OpGet, "x"),
		"empty id":        notice(1, proto.OpNotice, ""),
		"id too long":     notice(1, proto.OpNotice, strings.Repeat("i", 65)),
		"a request": func() []byte {
			b, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpNotice, Payload: []byte("x")})
			return b
		}(),
		"garbage": []byte("HTTP/1.1 200 OK\r\n\r\n"),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			path, got, closed := hostile(t, bad)
			log := &testLog{}
			u := open(t, upstream.Options{Servers: []upstream.Server{unixServer("h", path)}, Log: log, Retry: time.Hour})
			n := upstream.NewNear(u, u, 100)
			want := append(request(1, proto.OpGet, proto.FeaturesID), request(2, proto.OpSubscribe, nil)...)
			select {
			case b := <-got:
				if !bytes.Equal(b, want) {
					t.Fatalf("subscription bytes % x, want % x", b, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no subscription")
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the client kept a subscription that sent a bad notice")
			}
			eventually(t, 10*time.Second, "the near cache off", func() bool { return !u.NearState().Live() })
			_ = n
		})
	}
}

func request(uid uint32, op proto.Op, payload []byte) []byte {
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: payload})
	return b
}

type chanDone chan *store.Call

func (c chanDone) Complete(x *store.Call) { c <- x }

// Started calls (dc_client's loop): a GET the near cache holds completes
// within Start, without the server; an ADD started fills it.
func TestNearStart(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	a, _ := nearOn(t, unixServer("s", ns.path))
	b, _ := nearOn(t, unixServer("s", ns.path))
	done := make(chanDone, 1)
	c := &store.Call{Op: proto.OpAdd, ID: []byte("x"), Data: []byte("dx"), TTL: time.Minute, Done: done}
	if !b.Start(c) {
		t.Fatal("not started")
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
	before := ns.s.Ops()
	for _, op := range []proto.Op{proto.OpGet, proto.OpHave} {
		c = &store.Call{Op: op, ID: []byte("x"), Done: done}
		if !b.Start(c) {
			t.Fatal("not started")
		}
		select {
		case r := <-done:
			if r.Err != nil || (op == proto.OpGet && string(r.Res) != "dx") {
				t.Fatalf("%v: %q %v", op, r.Res, r.Err)
			}
		default:
			t.Fatalf("a near %v did not complete within Start", op)
		}
	}
	if ns.s.Ops() != before {
		t.Fatal("near hits went to the server")
	}
	if err := a.Remove(bg, []byte("x")); err != nil {
		t.Fatal(err)
	}
	c = &store.Call{Op: proto.OpGet, ID: []byte("x"), Done: done}
	b.Start(c)
	if r := <-done; !errors.Is(r.Err, store.ErrNotFound) {
		t.Fatalf("GET after a removal elsewhere: %q %v", r.Res, r.Err)
	}
}

// A copy whose session the server no longer has (dropped to make room,
// which sends no notice) is replaced by the data of an ADD the server
// stores: never the old data.
func TestNearAddReplacesACopyTheServerLost(t *testing.T) {
	ns := startNearServerWith(t, filepath.Join(t.TempDir(), "s"), true, cache.Config{MaxSessions: 64, Shards: 1})
	n, u := nearOn(t, unixServer("s", ns.path))
	mustAdd(t, n, "x")
	// Filling the server drops x, the soonest to expire, with no notice.
	for i := range 100 {
		if err := u.Add(bg, []byte(fmt.Sprint("filler-", i)), []byte("f"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Have(bg, []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("x still on the server: %v", err)
	}
	if err := n.Add(bg, []byte("x"), []byte("new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := getFrom(t, n, "x"); got != "new" {
		t.Fatalf("after a new ADD: %q", got)
	}
}

// A near cache holds NearBytesPerSession per session of its bound at
// most, whatever the size of the sessions its clients add: 200 sessions
// of 32 000 bytes (6.4 MB) in one of 1000 sessions keep 4 MB at most.
func TestNearBytesBounded(t *testing.T) {
	ns := startNearServer(t, filepath.Join(t.TempDir(), "s"), true)
	n, _ := nearOn(t, unixServer("s", ns.path))
	big := bytes.Repeat([]byte("x"), 32000)
	for i := range 200 {
		if err := n.Add(bg, []byte(fmt.Sprintf("big-%d", i)), big, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Stats()
	if limit := int64(1000 * upstream.NearBytesPerSession); st.Bytes > limit || st.Sessions == 0 {
		t.Fatalf("the near cache holds %d sessions, %d bytes; want some, within %d", st.Sessions, st.Bytes, limit)
	}
	// What it dropped is still on the server.
	if got := getFrom(t, n, "big-0"); got != string(big) {
		t.Fatalf("big-0: %d bytes", len(got))
	}
}
