// SPDX-License-Identifier: Apache-2.0

package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/store/storetest"
)

// started is a Store whose calls go through Start where it takes them
// (waiting for their completion), and to the blocking methods where it
// declines them; starts counts the calls it took.
type started struct {
	*Store
	starts *atomic.Int64
}

// waitDone is a Completion that is closed when told.
type waitDone chan struct{}

func (w waitDone) Complete(*store.Call) { close(w) }

// run starts c and waits for it; false when Start declined it.
func (s started) run(c *store.Call) bool {
	w := make(waitDone)
	c.Done = w
	if !s.Store.Start(c) {
		return false
	}
	s.starts.Add(1)
	<-w
	return true
}

func (s started) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	c := &store.Call{Op: proto.OpAdd, ID: id, Data: data, TTL: ttl}
	if s.run(c) {
		return c.Err
	}
	return s.Store.Add(ctx, id, data, ttl)
}

func (s started) Get(ctx context.Context, id, dst []byte) ([]byte, error) {
	c := &store.Call{Op: proto.OpGet, ID: id, Dst: dst}
	if s.run(c) {
		return c.Res, c.Err
	}
	return s.Store.Get(ctx, id, dst)
}

func (s started) Remove(ctx context.Context, id []byte) error {
	c := &store.Call{Op: proto.OpRemove, ID: id}
	if s.run(c) {
		return c.Err
	}
	return s.Store.Remove(ctx, id)
}

func (s started) Have(ctx context.Context, id []byte) error {
	c := &store.Call{Op: proto.OpHave, ID: id}
	if s.run(c) {
		return c.Err
	}
	return s.Store.Have(ctx, id)
}

// The calls Start takes give the blocking methods' results: the
// conformance suite through Start, which takes most of its calls.
func TestConformanceStarted(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	n := new(atomic.Int64)
	storetest.Run(t, func(t *testing.T) store.Store {
		return started{open(t, "redis://"+srv.Addr(), Options{}), n}
	})
	if n := n.Load(); n < 100 {
		t.Errorf("Start took %d calls of the conformance suite", n)
	}
}

// A started call on a server that answers nothing completes at the
// store's deadline, unavailable, and the store works again after.
func TestStartedDeadlineStalledServer(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	s := open(t, "redis://"+srv.Addr(), Options{Timeout: timeout})
	defer s.Close()
	n := new(atomic.Int64)
	st := started{s, n}
	id := []byte("stall")
	addOnce(t, s, id)
	srv.Stop()
	start := time.Now()
	_, err := st.Get(bg, id, nil)
	unavailable(t, "a started Get on a stopped server", err, time.Since(start), timeout+100*time.Millisecond)
	if n := n.Load(); n != 1 {
		t.Fatalf("Start took %d calls, want 1", n)
	}
	srv.Cont()
	redistest.WaitFor(t, 10*time.Second, "started calls to be answered again", func() error {
		if err := st.Add(bg, []byte("after"), []byte("d"), time.Hour); err != nil && !errors.Is(err, store.ErrDuplicate) {
			return err
		}
		_, err := st.Get(bg, []byte("after"), nil)
		return err
	})
}
