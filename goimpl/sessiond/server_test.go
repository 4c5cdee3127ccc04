// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/store"
)

var bg = context.Background()

// mapStore is a minimal store.Store: it records the last lifetime it was
// given and honours expiry against its clock, so tests can check both.
type mapStore struct {
	mu        sync.Mutex
	items     map[string]mapItem
	now       func() time.Time
	lastTTL   time.Duration
	lastAddID []byte
}

type mapItem struct {
	data    []byte
	expires time.Time
}

func newMapStore() *mapStore { return &mapStore{items: map[string]mapItem{}, now: time.Now} }

var _ store.Store = (*mapStore)(nil)

func (c *mapStore) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastTTL, c.lastAddID = ttl, append([]byte(nil), id...)
	if it, ok := c.items[string(id)]; ok && !c.now().After(it.expires) {
		return store.ErrDuplicate
	}
	c.items[string(id)] = mapItem{append([]byte(nil), data...), c.now().Add(ttl)}
	return nil
}

func (c *mapStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[string(id)]
	if !ok || c.now().After(it.expires) {
		return dst, store.ErrNotFound
	}
	return append(dst, it.data...), nil
}

func (c *mapStore) Have(ctx context.Context, id []byte) error {
	_, err := c.Get(ctx, id, nil)
	return err
}

func (c *mapStore) Remove(_ context.Context, id []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[string(id)]; !ok {
		return store.ErrNotFound
	}
	delete(c.items, string(id))
	return nil
}

func (c *mapStore) Take(context.Context, []byte, []byte) ([]byte, error) {
	return nil, store.ErrUnsupported
}

func (c *mapStore) Close() error { return nil }

// put stores an entry directly, as another client of the store would.
func (c *mapStore) put(id, data []byte) {
	c.mu.Lock()
	c.items[string(id)] = mapItem{data, c.now().Add(time.Minute)}
	c.mu.Unlock()
}

// clock is a settable time source for the stores.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// startServer serves on a fresh loopback port until the test ends, and
// checks that Serve then returns nil.
func startServer(t testing.TB, s *Server) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(conn) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// dial returns a client socket connected to the server.
func dial(t testing.TB, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// get sends a GET for key and returns the parsed reply.
func get(t testing.TB, c *net.UDPConn, key [KeySize]byte) Packet {
	t.Helper()
	p, err := getErr(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// getErr is get for goroutines other than the test's.
func getErr(c *net.UDPConn, key [KeySize]byte) (Packet, error) {
	req := Packet{Type: TypeGet, Key: key}
	if _, err := c.Write(req.Append(nil)); err != nil {
		return Packet{}, err
	}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		return Packet{}, fmt.Errorf("no reply to GET: %v", err)
	}
	p, err := ParseReply(buf[:n])
	if err != nil {
		return p, fmt.Errorf("bad reply %x: %v", buf[:n], err)
	}
	if p.Key != key {
		return p, fmt.Errorf("reply key %x, want %x", p.Key, key)
	}
	return p, nil
}

func key(b byte) (k [KeySize]byte) {
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func newPacket(k [KeySize]byte, timeout uint16, value []byte) []byte {
	p := Packet{Type: TypeNew, Timeout: timeout, Key: k, Value: value}
	return p.Append(nil)
}

func TestRoundTrip(t *testing.T) {
	c := newMapStore()
	s := New(c, Options{})
	cl := dial(t, startServer(t, s))
	k := key(1)
	val := bytes.Repeat([]byte{0x30, 0x82}, 100)

	if p := get(t, cl, k); p.Type != TypeNotFound || len(p.Value) != 0 {
		t.Fatalf("before NEW: got type %#x value %x, want 0x80 and nothing", p.Type, p.Value)
	}
	send(t, cl, newPacket(k, 300, val))
	p := get(t, cl, k)
	if p.Type != TypeFound || !bytes.Equal(p.Value, val) {
		t.Fatalf("after NEW: got type %#x value %x, want 0x81 and %x", p.Type, p.Value, val)
	}
	if p := get(t, cl, key(2)); p.Type != TypeNotFound {
		t.Fatalf("other key: got type %#x, want 0x80", p.Type)
	}
	rm := Packet{Type: TypeRemove, Key: k}
	send(t, cl, rm.Append(nil))
	if p := get(t, cl, k); p.Type != TypeNotFound {
		t.Fatalf("after REMOVE: got type %#x, want 0x80", p.Type)
	}
	st := s.Stats()
	want := Stats{New: 1, Get: 4, Remove: 1, Hits: 1, Misses: 3}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestKeySpace(t *testing.T) {
	c := newMapStore()
	s := New(c, Options{})
	out := make([]byte, MaxDatagram)
	k := key(7)
	s.Handle(newPacket(k, 60, []byte("sess")), out)
	wantID := append([]byte{IDPrefix}, k[:]...)
	if !bytes.Equal(c.lastAddID, wantID) || len(c.lastAddID) != 33 {
		t.Fatalf("stored under id %x, want %x", c.lastAddID, wantID)
	}
	// A distcache client's entry under the bare session id is not seen.
	c.put(k[:], []byte("other"))
	c.Remove(bg, wantID)
	req := Packet{Type: TypeGet, Key: k}
	if n := s.Handle(req.Append(nil), out); n != HeaderSize || out[1] != TypeNotFound {
		t.Fatalf("GET saw a non-sessiond entry: %x", out[:n])
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		seconds uint16
		want    time.Duration
	}{
		{0, 0}, {1, time.Second}, {300, 300 * time.Second}, {64800, 18 * time.Hour}, {65535, 65535 * time.Second},
	}
	for _, tt := range tests {
		c := newMapStore()
		s := New(c, Options{})
		s.Handle(newPacket(key(1), tt.seconds, []byte{1}), make([]byte, MaxDatagram))
		if c.lastTTL != tt.want {
			t.Errorf("timeout %d s: store got %v, want %v", tt.seconds, c.lastTTL, tt.want)
		}
	}

	clk := &clock{t: time.Unix(1000, 0)}
	ms := newMapStore()
	ms.now = clk.Now
	s := New(ms, Options{})
	out := make([]byte, MaxDatagram)
	s.Handle(newPacket(key(1), 2, []byte{1}), out)
	get := (&Packet{Type: TypeGet, Key: key(1)}).Append(nil)
	clk.Add(2 * time.Second)
	if s.Handle(get, out); out[1] != TypeFound {
		t.Errorf("at the lifetime's end: got %#x, want found", out[1])
	}
	clk.Add(time.Millisecond)
	if s.Handle(get, out); out[1] != TypeNotFound {
		t.Errorf("after the lifetime: got %#x, want not found", out[1])
	}
}

func TestNewReplaces(t *testing.T) {
	s := New(newMapStore(), Options{})
	out := make([]byte, MaxDatagram)
	s.Handle(newPacket(key(1), 60, []byte("first")), out)
	s.Handle(newPacket(key(1), 60, []byte("second")), out)
	n := s.Handle((&Packet{Type: TypeGet, Key: key(1)}).Append(nil), out)
	if got := string(out[HeaderSize:n]); got != "second" {
		t.Errorf("got %q, want the latest value", got)
	}
	if st := s.Stats(); st.Replaced != 1 || st.NotStored != 0 {
		t.Errorf("stats %+v, want Replaced 1", st)
	}
}

// A value the cache holds that stunnel could not receive whole is a miss.
func TestOversizeStoredValueIsMiss(t *testing.T) {
	c := newMapStore()
	s := New(c, Options{})
	k := key(3)
	c.put(append([]byte{IDPrefix}, k[:]...), make([]byte, MaxValue+1))
	out := make([]byte, MaxDatagram)
	if n := s.Handle((&Packet{Type: TypeGet, Key: k}).Append(nil), out); n != HeaderSize || out[1] != TypeNotFound {
		t.Errorf("got %d bytes type %#x, want a 36-byte not-found", n, out[1])
	}
}

// Every malformed datagram is dropped without a reply, counted under its
// reason, and the server goes on answering.
func TestMalformedDropped(t *testing.T) {
	s := New(newMapStore(), Options{})
	cl := dial(t, startServer(t, s))
	k := key(9)
	tests := []struct {
		name  string
		in    []byte
		count func(Stats) uint64
	}{
		{"empty", []byte{}, func(s Stats) uint64 { return s.Short }},
		{"35 bytes", make([]byte, 35), func(s Stats) uint64 { return s.Short }},
		{"version 0", append([]byte{0, 1, 0, 0}, k[:]...), func(s Stats) uint64 { return s.BadVersion }},
		{"version 2", append([]byte{2, 1, 0, 0}, k[:]...), func(s Stats) uint64 { return s.BadVersion }},
		{"type 3", append([]byte{1, 3, 0, 0}, k[:]...), func(s Stats) uint64 { return s.BadType }},
		{"type 0x81", append([]byte{1, 0x81, 0, 0}, k[:]...), func(s Stats) uint64 { return s.BadType }},
		{"549 bytes", append(newPacket(k, 1, make([]byte, MaxValue)), 0), func(s Stats) uint64 { return s.Oversize }},
		{"8 KiB", newPacket(k, 1, make([]byte, 8192)), func(s Stats) uint64 { return s.Oversize }},
		{"NEW without value", newPacket(k, 1, nil), func(s Stats) uint64 { return s.NoValue }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats()
			send(t, cl, tt.in)
			// The server handles datagrams from one socket in order, so
			// once the GET is answered the bad datagram has been handled;
			// a reply to the bad one would arrive first and fail get().
			if p := get(t, cl, k); p.Type != TypeNotFound {
				t.Fatalf("GET after it: type %#x, want 0x80 (nothing stored)", p.Type)
			}
			after := s.Stats()
			if d := tt.count(after) - tt.count(before); d != 1 {
				t.Errorf("reason counter went up by %d, want 1", d)
			}
			if d := after.Malformed() - before.Malformed(); d != 1 {
				t.Errorf("Malformed went up by %d, want 1", d)
			}
			if after.New != 0 {
				t.Errorf("a malformed datagram was stored")
			}
		})
	}
}

func TestCloseBeforeServe(t *testing.T) {
	s := New(newMapStore(), Options{})
	s.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := s.Serve(conn); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}

// Many clients at once, each with its own socket as stunnel does.
func TestConcurrentClients(t *testing.T) {
	s := New(newMapStore(), Options{})
	addr := startServer(t, s)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		cl := dial(t, addr)
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := key(byte(g*50 + i))
				k[31] = byte(g)
				v := []byte(strings.Repeat(string(rune('a'+g)), i+1))
				if _, err := cl.Write(newPacket(k, 60, v)); err != nil {
					t.Error(err)
					return
				}
				p, err := getErr(cl, k)
				if err != nil || p.Type != TypeFound || !bytes.Equal(p.Value, v) {
					t.Errorf("client %d item %d: got %#x %q, %v", g, i, p.Type, p.Value, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if st := s.Stats(); st.Hits != 400 || st.New != 400 {
		t.Errorf("stats %+v, want 400 NEW and 400 hits", st)
	}
}

// The same protocol over dc_server's cache, with its expiry (an entry
// lives until now > added + timeout, to the millisecond).
func TestDefaultCache(t *testing.T) {
	clk := &clock{t: time.Unix(1700000000, 0)}
	c := cache.New(cache.Config{MaxSessions: 64, Now: clk.Now})
	s := New(c.Store(), Options{})
	cl := dial(t, startServer(t, s))
	k := key(0x21)
	val := bytes.Repeat([]byte{0x5a}, MaxValue)

	send(t, cl, newPacket(k, 10, val))
	if p := get(t, cl, k); p.Type != TypeFound || !bytes.Equal(p.Value, val) {
		t.Fatalf("after NEW: got %#x, %d bytes", p.Type, len(p.Value))
	}
	if n := c.NumItems(clk.Now()); n != 1 {
		t.Fatalf("cache holds %d items, want 1", n)
	}
	// A distcache client's entry under the bare 32-byte session id is a
	// different entry.
	if !c.Add(clk.Now(), 60000, k[:], []byte("from DC_CTX")) {
		t.Fatal("distcache Add of the bare id refused: the key spaces collide")
	}
	clk.Add(10 * time.Second)
	if p := get(t, cl, k); p.Type != TypeFound {
		t.Fatalf("at the lifetime's end: got %#x, want found", p.Type)
	}
	clk.Add(time.Millisecond)
	if p := get(t, cl, k); p.Type != TypeNotFound {
		t.Fatalf("after the lifetime: got %#x, want not found", p.Type)
	}
	send(t, cl, newPacket(k, 10, []byte("again")))
	send(t, cl, (&Packet{Type: TypeRemove, Key: k}).Append(nil))
	if p := get(t, cl, k); p.Type != TypeNotFound {
		t.Fatalf("after REMOVE: got %#x, want not found", p.Type)
	}
	if !c.Have(clk.Now(), k[:]) {
		t.Error("REMOVE deleted the distcache entry with the bare id")
	}
}
