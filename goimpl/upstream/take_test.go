// SPDX-License-Identifier: Apache-2.0

package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proto/prototest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
	"github.com/distcache-go/distcache/internal/daemontest"
)

// memStore is the in-memory cache as a store.
func memStore() store.Store { return cache.New(cache.Config{}).Store() }

// protoServer serves the distcache protocol from a Handler and counts the
// TAKE requests it received.
type protoServer struct {
	*prototest.Server
	takes atomic.Int64
}

func serveProto(t *testing.T, h *store.Handler) *protoServer {
	ps := &protoServer{}
	ps.Server = prototest.Serve(t, filepath.Join(t.TempDir(), "s"), func(m *proto.Message) ([]byte, bool) {
		if m.Op == proto.OpTake {
			ps.takes.Add(1)
		}
		out, err := h.Handle(context.Background(), m, nil)
		return out, err == nil // as a 1.5 server closes on an op it does not know
	})
	return ps
}

func TestTakeOnAServerThatAnnouncesIt(t *testing.T) {
	ps := serveProto(t, &store.Handler{Store: memStore(), Features: func() uint32 { return proto.FeatureTake }})
	takeRace(t, ps.Path)
}

// The same race on a real dc_server, whose cache takes under one lock.
func TestTakeOnDCServer(t *testing.T) {
	takeRace(t, daemontest.Start(t, "dc_server").Path)
}

func takeRace(t *testing.T, path string) {
	u := open(t, upstream.Options{Servers: []upstream.Server{unixServer("s", path)}, Log: &testLog{}})
	waitUp(t, u)
	if u.Features()&proto.FeatureTake == 0 {
		t.Fatal("TAKE not seen as announced")
	}
	ctx := context.Background()
	id, data := []byte("single-use"), []byte("state")
	if err := u.Add(ctx, id, data, time.Minute); err != nil {
		t.Fatal(err)
	}
	// 64 callers race to take one session: exactly one gets it.
	var wins, misses atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := u.Take(ctx, id, nil)
			switch {
			case err == nil && bytes.Equal(got, data):
				wins.Add(1)
			case errors.Is(err, store.ErrNotFound):
				misses.Add(1)
			default:
				t.Errorf("Take: %q %v", got, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || misses.Load() != 63 {
		t.Fatalf("%d winners, %d misses; want 1 and 63", wins.Load(), misses.Load())
	}
	if err := u.Have(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Have after Take: %v", err)
	}
}

// A server of the 1.5 protocol is never sent TAKE: the probe misses, Take
// is ErrUnsupported, and the connection survives.
func TestTakeNeverSentToA15Server(t *testing.T) {
	ps := serveProto(t, &store.Handler{Store: memStore()}) // no Features: 1.5 answers
	u := open(t, upstream.Options{Servers: []upstream.Server{unixServer("s", ps.Path)}, Log: &testLog{}})
	waitUp(t, u)
	ctx := context.Background()
	u.Add(ctx, []byte("id"), []byte("data"), time.Minute)
	for i := 0; i < 3; i++ {
		if _, err := u.Take(ctx, []byte("id"), nil); !errors.Is(err, store.ErrUnsupported) {
			t.Fatalf("Take on a 1.5 server: %v", err)
		}
	}
	if u.Features() != 0 {
		t.Fatal("a 1.5 server seen as announcing features")
	}
	if n := ps.takes.Load(); n != 0 {
		t.Fatalf("%d TAKE requests reached a 1.5 server", n)
	}
	if got, err := u.Get(ctx, []byte("id"), nil); err != nil || string(got) != "data" {
		t.Fatalf("Get after Take attempts: %q %v", got, err)
	}
	if n := ps.Conns.Load(); n != 1 {
		t.Fatalf("%d connections; the first should have lived", n)
	}
}

func TestServerAt(t *testing.T) {
	ps := serveProto(t, &store.Handler{Store: memStore()})
	srv, err := upstream.ServerAt(context.Background(), "UNIX:"+ps.Path)
	if err != nil {
		t.Fatal(err)
	}
	u := open(t, upstream.Options{Servers: []upstream.Server{srv}, Log: &testLog{}})
	waitUp(t, u)
	if err := u.Add(context.Background(), []byte("id"), []byte("d"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"IP:5555", "FD:3", "nonsense", "UNIX:"} {
		if _, err := upstream.ServerAt(context.Background(), bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
