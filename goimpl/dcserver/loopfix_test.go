// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// gatedStore holds a GET of "slow" until release, as a Redis round trip
// would; everything else is the cache's. It says nothing of blocking.
type gatedStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (g gatedStore) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	if string(id) == "slow" {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Store.Get(ctx, id, dst)
}

// A store that may block (Redis) is not called from an event loop: while
// one connection's GET waits in the store, a new connection is accepted
// and answered, whatever Options.Loops says.
func TestBlockingStoreDoesNotStallOthers(t *testing.T) {
	for _, loops := range []int{-1, 1, 0} {
		t.Run(fmt.Sprint(loops), func(t *testing.T) {
			c := cache.New(cache.Config{})
			g := gatedStore{c.Store(), make(chan struct{}, 1), make(chan struct{})}
			s, sock := serveT(t, Options{Store: g, Loops: loops})
			defer close(g.release)
			a := dial(t, sock)
			a.send(1, proto.OpGet, []byte("slow"))
			<-g.entered // a's request waits in the store
			b := dial(t, sock)
			b.nc.SetDeadline(time.Now().Add(5 * time.Second))
			b.send(2, proto.OpHave, []byte("x"))
			m, err := b.rd.ReadMessage()
			if err != nil {
				t.Fatalf("another connection's HAVE while a GET waits in the store: %v (%d loops serve)", err, s.loops.Load())
			}
			if m.UID != 2 || !bytes.Equal(m.Payload, []byte{1}) {
				t.Fatalf("HAVE: uid %d, %x", m.UID, m.Payload)
			}
		})
	}
}
