// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// startable is mapStore as a store.Async (a started call is carried out
// at once).
type startable struct{ *mapStore }

func (s startable) Start(c *store.Call) bool {
	ctx := context.Background()
	switch c.Op {
	case proto.OpAdd:
		c.Err = s.Add(ctx, c.ID, c.Data, c.TTL)
	case proto.OpGet:
		c.Res, c.Err = s.Get(ctx, c.ID, c.Dst)
	case proto.OpRemove:
		c.Err = s.Remove(ctx, c.ID)
	case proto.OpHave:
		c.Err = s.Have(ctx, c.ID)
	}
	c.Done.Complete(c)
	return true
}

type completions struct{ n int }

func (d *completions) Complete(*store.Call) { d.n++ }

// Started calls are counted as the blocking ones are, and passed on to
// the caller's Completion; over a store that cannot start calls, Start
// refuses and CanStart says so.
func TestWrapStoreCountsStartedCalls(t *testing.T) {
	r := New(Options{Program: "dc_client", Version: "test"})
	st := r.WrapStore(startable{newMapStore()}, Distcache)
	if !store.CanStart(st) {
		t.Fatal("CanStart of a wrapped Async store: false")
	}
	d := new(completions)
	start := func(op proto.Op, id string) {
		t.Helper()
		c := &store.Call{Op: op, ID: []byte(id), Data: []byte("data"), TTL: time.Minute, Done: d}
		if !st.(store.Async).Start(c) {
			t.Fatalf("Start(%v) refused", op)
		}
		if c.Done != store.Completion(d) {
			t.Fatalf("the Call's Done after completion is %T, not the caller's", c.Done)
		}
	}
	for i := range 4 {
		start(proto.OpAdd, fmt.Sprint("id-", i))
	}
	start(proto.OpAdd, "id-0") // duplicate
	for i := range 6 {
		start(proto.OpGet, fmt.Sprint("id-", i)) // 4 hits, 2 misses
	}
	start(proto.OpHave, "id-1")
	start(proto.OpRemove, "id-1")
	start(proto.OpRemove, "id-1")
	if d.n != 14 {
		t.Fatalf("%d completions, want 14", d.n)
	}
	got := scrape(t, r)
	want := map[string]float64{
		req("add", "stored"): 4, req("add", "duplicate"): 1,
		req("get", "hit"): 4, req("get", "miss"): 2,
		req("have", "hit"): 1, req("remove", "hit"): 1, req("remove", "miss"): 1,
		durCount("get"): 6,
	}
	for k, v := range want {
		if g := got[k]; g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	plain := r.WrapStore(newMapStore(), Distcache)
	if store.CanStart(plain) || plain.(store.Async).Start(&store.Call{Op: proto.OpGet, ID: []byte("x"), Done: d}) {
		t.Error("a wrapped blocking store starts calls")
	}
}

// The backend's started calls are timed and their errors counted as the
// blocking ones are, and passed on; over a backend that cannot start
// calls, Start refuses.
func TestWrapBackendTimesStartedCalls(t *testing.T) {
	r := New(Options{Program: "dc_client", Version: "test"})
	base := newMapStore()
	be := r.WrapBackend(startable{base})
	if !store.CanStart(be) {
		t.Fatal("CanStart of a wrapped Async backend: false")
	}
	d := new(completions)
	start := func(op proto.Op, id string) {
		t.Helper()
		c := &store.Call{Op: op, ID: []byte(id), Data: []byte("data"), TTL: time.Minute, Done: d}
		if !be.(store.Async).Start(c) {
			t.Fatalf("Start(%v %s) refused", op, id)
		}
	}
	start(proto.OpAdd, "a")
	start(proto.OpGet, "a")
	start(proto.OpGet, "missing") // a miss: not an error
	base.fail = io.EOF
	start(proto.OpHave, "a")
	if d.n != 4 {
		t.Fatalf("%d completions passed on, want 4", d.n)
	}
	got := scrape(t, r)
	for k, v := range map[string]float64{
		`distcache_backend_errors_total{kind="closed"}`:               1,
		`distcache_backend_errors_total{kind="other"}`:                0,
		`distcache_backend_request_duration_seconds_count{op="add"}`:  1,
		`distcache_backend_request_duration_seconds_count{op="get"}`:  2,
		`distcache_backend_request_duration_seconds_count{op="have"}`: 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	plain := r.WrapBackend(base)
	if store.CanStart(plain) || plain.(store.Async).Start(&store.Call{Op: proto.OpGet, ID: []byte("x"), Done: d}) {
		t.Fatal("a wrapped blocking backend started a call")
	}
}
