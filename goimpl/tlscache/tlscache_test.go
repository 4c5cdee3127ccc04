// SPDX-License-Identifier: Apache-2.0

package tlscache

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	memcache "github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/store"
)

// testStore is the in-memory cache with faults to order: fail, when set,
// is what every call returns; noTake makes Take unsupported. It records
// the last lifetime added and counts lookups.
type testStore struct {
	store.Store
	c       *memcache.Cache
	mu      sync.Mutex
	ttl     time.Duration
	fail    error
	noTake  bool
	lookups int
}

func newMapStore() *testStore {
	c := memcache.New(memcache.Config{})
	return &testStore{Store: c.Store(), c: c}
}

func (s *testStore) fault() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func (s *testStore) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	if err := s.fault(); err != nil {
		return err
	}
	s.mu.Lock()
	s.ttl = ttl
	s.mu.Unlock()
	return s.Store.Add(ctx, id, data, ttl)
}

func (s *testStore) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	s.mu.Lock()
	s.lookups++
	s.mu.Unlock()
	if err := s.fault(); err != nil {
		return dst, err
	}
	return s.Store.Get(ctx, id, dst)
}

func (s *testStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	if s.noTake {
		return dst, store.ErrUnsupported
	}
	return s.Store.Take(ctx, id, dst)
}

func (s *testStore) len() int { return s.c.NumItems(time.Now()) }

// entries returns the stored sessions.
func (s *testStore) entries() map[string][]byte {
	m := map[string][]byte{}
	for _, e := range s.c.Export() {
		m[string(e.ID)] = e.Data
	}
	return m
}

// testCert is one self-signed certificate every test server presents,
// as the servers of one farm would.
var testCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "www.example.test"},
		DNSNames:     []string{"www.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
})

// farmServer is an HTTPS server whose sessions live in s.
func farmServer(t *testing.T, s store.Store, opt *Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testCert()}}
	Configure(srv.TLS, s, opt)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// replayCache is a client session cache that keeps the first ticket it
// is given for a server name and never lets a later one replace it, so a
// client can present the same ticket again.
type replayCache struct {
	mu sync.Mutex
	m  map[string]*tls.ClientSessionState
}

func (c *replayCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.m[key]
	return cs, ok
}

func (c *replayCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && cs != nil {
		c.m[key] = cs
	}
}

// connect connects to srv with the given client cache and version, waits
// for a TLS 1.3 ticket to arrive, and reports whether it resumed.
func connect(t *testing.T, srv *httptest.Server, cache tls.ClientSessionCache, version uint16) bool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(testCert().Leaf)
	cfg := &tls.Config{
		RootCAs:            pool,
		ServerName:         "www.example.test",
		ClientSessionCache: cache,
		MinVersion:         version,
		MaxVersion:         version,
	}
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("handshake with %s: %v", srv.Listener.Addr(), err)
	}
	defer conn.Close()
	// A TLS 1.3 ticket comes after the handshake: an HTTP exchange makes
	// the client read it before the connection closes.
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: www.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
	return conn.ConnectionState().DidResume
}

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}}

func TestResumesAcrossServers(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			shared := newMapStore()
			a := farmServer(t, shared, nil)
			b := farmServer(t, shared, nil)
			other := farmServer(t, newMapStore(), nil)
			cache := tls.NewLRUClientSessionCache(4)
			if connect(t, a, cache, ver.v) {
				t.Fatal("first handshake resumed")
			}
			if shared.len() == 0 {
				t.Fatal("no session stored by server A")
			}
			if !connect(t, b, cache, ver.v) {
				t.Fatal("server B did not resume the session made on A")
			}
			if connect(t, other, cache, ver.v) {
				t.Fatal("a server on another cache resumed")
			}
		})
	}
}

func TestTicketIsAHandle(t *testing.T) {
	shared := newMapStore()
	a := farmServer(t, shared, nil)
	connect(t, a, tls.NewLRUClientSessionCache(4), tls.VersionTLS13)
	for id, state := range shared.entries() {
		if len(id) != IDLen {
			t.Errorf("handle of %d bytes, want %d", len(id), IDLen)
		}
		ss, err := tls.ParseSessionState(state)
		if err != nil {
			t.Fatalf("stored state does not parse: %v", err)
		}
		if ss.EarlyData {
			t.Error("a session outside single-use mode allows early data")
		}
	}
	if shared.ttl != DefaultLifetime {
		t.Errorf("lifetime %v, want %v", shared.ttl, DefaultLifetime)
	}
}

func TestStoreFailureIsAFullHandshake(t *testing.T) {
	broken := newMapStore()
	broken.fail = store.ErrUnavailable
	var mu sync.Mutex
	var ops []string
	a := farmServer(t, broken, &Options{OnError: func(op string, err error) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v", op, err)
		}
	}})
	cache := tls.NewLRUClientSessionCache(4)
	for _, ver := range versions {
		if connect(t, a, cache, ver.v) {
			t.Fatalf("%s resumed on a broken store", ver.name)
		}
		if connect(t, a, cache, ver.v) {
			t.Fatalf("%s resumed on a broken store", ver.name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var adds, gets int
	for _, op := range ops {
		switch op {
		case "add":
			adds++
		case "get":
			gets++
		}
	}
	if adds == 0 || gets == 0 {
		t.Fatalf("store errors not reported: %v", ops)
	}
}

func TestSingleUse(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			shared := newMapStore()
			opt := &Options{SingleUse: true}
			a := farmServer(t, shared, opt)
			b := farmServer(t, shared, opt)
			cache := &replayCache{m: map[string]*tls.ClientSessionState{}}
			connect(t, a, cache, ver.v)
			if !connect(t, b, cache, ver.v) {
				t.Fatal("first use of the session did not resume")
			}
			// The same ticket again, on either server: taken already.
			if connect(t, a, cache, ver.v) {
				t.Fatal("a single-use session resumed twice")
			}
		})
	}
}

func TestSingleUseWithoutTake(t *testing.T) {
	shared := newMapStore()
	shared.noTake = true
	var reported error
	a := farmServer(t, shared, &Options{SingleUse: true, OnError: func(_ string, err error) { reported = err }})
	cache := tls.NewLRUClientSessionCache(4)
	connect(t, a, cache, tls.VersionTLS13)
	if connect(t, a, cache, tls.VersionTLS13) {
		t.Fatal("resumed in single-use mode on a store without Take")
	}
	if !errors.Is(reported, store.ErrUnsupported) {
		t.Fatalf("reported %v, want ErrUnsupported", reported)
	}
}

// A handle presented twice within one handshake is taken once and
// resolves both times.
func TestSingleUseTwicePerHandshake(t *testing.T) {
	shared := newMapStore()
	c := newCache(shared, &Options{SingleUse: true})
	ss, err := tls.ParseSessionState(mustState(t))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := c.wrap(tls.ConnectionState{}, ss)
	h := &handshake{c: c}
	for i := 0; i < 2; i++ {
		got, err := h.unwrap(id, tls.ConnectionState{})
		if err != nil || got == nil {
			t.Fatalf("call %d: %v %v", i, got, err)
		}
	}
	if shared.len() != 0 {
		t.Fatal("session still stored after it was taken")
	}
	if got, _ := (&handshake{c: c}).unwrap(id, tls.ConnectionState{}); got != nil {
		t.Fatal("another handshake resolved a taken session")
	}
}

func TestForeignIdentityIgnored(t *testing.T) {
	shared := newMapStore()
	c := newCache(shared, nil)
	for _, id := range [][]byte{nil, make([]byte, 16), make([]byte, 200)} {
		if ss, err := c.unwrap(id, tls.ConnectionState{}); ss != nil || err != nil {
			t.Fatalf("identity of %d bytes: %v %v", len(id), ss, err)
		}
	}
	if shared.lookups != 0 {
		t.Fatalf("%d lookups for identities that cannot be ours", shared.lookups)
	}
}

// mustState returns a real server session state, made by a handshake.
func mustState(t *testing.T) []byte {
	t.Helper()
	shared := newMapStore()
	a := farmServer(t, shared, nil)
	connect(t, a, tls.NewLRUClientSessionCache(1), tls.VersionTLS13)
	for _, v := range shared.entries() {
		return v
	}
	t.Fatal("no state stored")
	return nil
}
