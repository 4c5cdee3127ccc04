// SPDX-License-Identifier: Apache-2.0

package tlscache

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
	"github.com/distcache-go/distcache/internal/daemontest"
)

// testLogger sends an upstream's log lines to the test's log.
type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf(format, args...) }

// dcStore is a store on the distcache server at addr, as a Go server of
// the farm would open it.
func dcStore(t *testing.T, addr string) store.Store {
	t.Helper()
	srv, err := upstream.ServerAt(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	// 5 s: these tests check what is stored, not how fast (with 1 s, and
	// dc_client's default 100 ms, a clean-clone make check at load 20 had
	// an ADD through dc_client fail: "upstream: no answer from the server").
	u, err := upstream.New(upstream.Options{Servers: []upstream.Server{srv}, Timeout: 5 * time.Second, Log: testLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	// Connected in the background: wait until it answers.
	end := time.Now().Add(10 * time.Second)
	for u.Have(context.Background(), []byte("probe")) != store.ErrNotFound {
		if time.Now().After(end) {
			t.Fatalf("no answer from %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return u
}

// Two HTTPS servers, each with its own connection to one real dc_server,
// resume each other's sessions; a third on another dc_server does not.
func TestFarmOnDCServer(t *testing.T) {
	shared := daemontest.Start(t, "dc_server")
	other := daemontest.Start(t, "dc_server")
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			a := farmServer(t, dcStore(t, shared.Addr), nil)
			b := farmServer(t, dcStore(t, shared.Addr), nil)
			c := farmServer(t, dcStore(t, other.Addr), nil)
			cache := tls.NewLRUClientSessionCache(4)
			if connect(t, a, cache, ver.v) {
				t.Fatal("first handshake resumed")
			}
			if !connect(t, b, cache, ver.v) {
				t.Fatal("server B did not resume the session made on A")
			}
			if connect(t, c, cache, ver.v) {
				t.Fatal("a server on another dc_server resumed")
			}
		})
	}
}

// Single-use mode on a real dc_server, directly and through a dc_client:
// a ticket resumes once, and a replay of it does not.
func TestSingleUseOnDCServer(t *testing.T) {
	server := daemontest.Start(t, "dc_server")
	proxy := daemontest.Start(t, "dc_client", "-server", server.Addr, "-reqtimeout", "10000")
	for _, via := range []struct{ name, addr string }{{"direct", server.Addr}, {"dc_client", proxy.Addr}} {
		for _, ver := range versions {
			t.Run(via.name+"/"+ver.name, func(t *testing.T) {
				opt := &Options{SingleUse: true, OnError: func(op string, err error) { t.Errorf("%s: %v", op, err) }}
				a := farmServer(t, dcStore(t, via.addr), opt)
				b := farmServer(t, dcStore(t, via.addr), opt)
				cache := &replayCache{m: map[string]*tls.ClientSessionState{}}
				connect(t, a, cache, ver.v)
				if !connect(t, b, cache, ver.v) {
					t.Fatal("first use of the session did not resume")
				}
				if connect(t, a, cache, ver.v) {
					t.Fatal("the same ticket resumed twice")
				}
			})
		}
	}
}
