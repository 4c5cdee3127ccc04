// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// asyncFake is fakeStore as a store.Async: a started call is carried out
// at once by the blocking method.
type asyncFake struct{ *fakeStore }

func (a asyncFake) Start(c *store.Call) bool {
	ctx := context.Background()
	switch c.Op {
	case proto.OpAdd:
		c.Err = a.Add(ctx, c.ID, c.Data, c.TTL)
	case proto.OpGet:
		c.Res, c.Err = a.Get(ctx, c.ID, c.Dst)
	case proto.OpRemove:
		c.Err = a.Remove(ctx, c.ID)
	case proto.OpHave:
		c.Err = a.Have(ctx, c.ID)
	default:
		return false
	}
	c.Done.Complete(c)
	return true
}

type completion struct{ n int }

func (d *completion) Complete(*store.Call) { d.n++ }

// Start and Finish answer every request as Handle does, byte for byte,
// starting only the ADDs, GETs, REMOVEs and HAVEs the store must see;
// the rest are answered at once or left to Handle (Blocking).
func TestHandlerStartAnswersAsHandle(t *testing.T) {
	f1, f2 := newFake(), newFake()
	f1.take, f2.take = true, true
	bits := func() uint32 { return proto.FeatureTake }
	hs := &store.Handler{Store: f1, Features: bits, MinLifetime: time.Minute}
	ha := &store.Handler{Store: asyncFake{f2}, Features: bits, MinLifetime: time.Minute}
	reqs := []struct {
		m   *proto.Message
		how store.Started
	}{
		{addReq(5000, exID, exData), store.Pending},
		{addReq(5000, exID, exData), store.Pending}, // duplicate
		{addReq(300, []byte("short-ttl"), exData), store.Pending},
		{req(proto.OpAdd, []byte{1, 2}), store.Answered}, // shorter than 8 bytes: closes
		{addReq(5000, nil, exData), store.Answered},
		{addReq(5000, proto.FeaturesID, exData), store.Answered},
		{req(proto.OpGet, exID), store.Pending},
		{req(proto.OpGet, []byte("absent")), store.Pending},
		{req(proto.OpGet, nil), store.Answered},
		{req(proto.OpGet, proto.FeaturesID), store.Blocking},
		{req(proto.OpHave, exID), store.Pending},
		{req(proto.OpHave, bytes.Repeat([]byte{1}, 65)), store.Answered},
		{req(proto.OpRemove, exID), store.Pending},
		{req(proto.OpRemove, exID), store.Pending},
		{req(proto.OpTake, exID), store.Blocking},
		{req(proto.Op(9), exID), store.Blocking},
		{&proto.Message{Response: true, Op: proto.OpGet, Payload: exID}, store.Blocking},
	}
	for i, r := range reqs {
		want, werr := hs.Handle(bg, r.m, nil)
		d := new(completion)
		c := store.Call{Done: d}
		got, how, err := ha.Start(r.m, nil, &c)
		if how != r.how {
			t.Fatalf("request %d (%v): started %d, want %d", i, r.m.Op, how, r.how)
		}
		switch how {
		case store.Pending:
			if d.n != 1 {
				t.Fatalf("request %d: completed %d times", i, d.n)
			}
			got, err = ha.Finish(&c, nil)
		case store.Blocking:
			got, err = ha.Handle(bg, r.m, nil)
		}
		if !bytes.Equal(got, want) || !errors.Is(err, werr) && err != werr {
			t.Errorf("request %d (%v): %x %v, want %x %v", i, r.m.Op, got, err, want, werr)
		}
	}
	if f1.ttl != f2.ttl || f2.ttl != time.Minute {
		t.Errorf("MinLifetime: ttls %v and %v, want %v", f1.ttl, f2.ttl, time.Minute)
	}
}

// A store error is answered by the Unavailable policy, and an answer too
// large for a message closes the connection, as Handle does.
func TestHandlerFinishErrors(t *testing.T) {
	f := newFake()
	h := &store.Handler{Store: asyncFake{f}, Unavailable: store.AnswerDisconnected}
	f.err = fmt.Errorf("down: %w", store.ErrUnavailable)
	d := new(completion)
	c := store.Call{Done: d}
	if _, how, _ := h.Start(req(proto.OpGet, exID), nil, &c); how != store.Pending {
		t.Fatalf("GET not started: %d", how)
	}
	if got, err := h.Finish(&c, nil); err != nil || !bytes.Equal(got, []byte{proto.ResultDisconnected}) {
		t.Errorf("a failed GET: %x %v, want 02", got, err)
	}
	f.err, f.big = nil, true
	f.m[string(exID)] = exData
	h.Start(req(proto.OpGet, exID), nil, &c)
	if _, err := h.Finish(&c, nil); !errors.Is(err, store.ErrClose) {
		t.Errorf("an oversize GET: %v, want ErrClose", err)
	}
}

// wrapper wraps a store without starting calls itself.
type wrapper struct{ store.Store }

func (w wrapper) Unwrap() store.Store { return w.Store }

type asyncWrapper struct{ store.Store }

func (w asyncWrapper) Unwrap() store.Store      { return w.Store }
func (w asyncWrapper) Start(c *store.Call) bool { return w.Store.(store.Async).Start(c) }

// CanStart is true only when every store of a chain of wrappers starts
// calls.
func TestCanStart(t *testing.T) {
	f := newFake()
	for _, c := range []struct {
		s    store.Store
		want bool
	}{
		{f, false},
		{asyncFake{f}, true},
		{asyncWrapper{asyncFake{f}}, true},
		{asyncWrapper{wrapper{asyncFake{f}}}, false},
		{wrapper{asyncFake{f}}, false},
	} {
		if got := store.CanStart(c.s); got != c.want {
			t.Errorf("CanStart(%T) = %v, want %v", c.s, got, c.want)
		}
	}
}
