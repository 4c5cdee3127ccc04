// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"sync"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// counted is a Call of a wrapped store in flight: what its count needs,
// and the Completion it replaced.
type counted struct {
	s       *Store
	o       op
	stripe  int
	t       int64
	refusal error
	next    store.Completion
}

var countedPool = sync.Pool{New: func() any { return new(counted) }}

// Start implements store.Async when the wrapped store does: the call is
// counted and timed as the blocking methods are, when it completes.
func (s *Store) Start(c *store.Call) bool {
	a, ok := s.next.(store.Async)
	if !ok {
		return false
	}
	k := countedPool.Get().(*counted)
	k.s, k.stripe, k.t, k.next = s, stripeOf(c.ID), monoNow(), c.Done
	switch c.Op {
	case proto.OpAdd:
		k.o, k.refusal = s.add, store.ErrDuplicate
	case proto.OpGet:
		k.o, k.refusal = s.get, store.ErrNotFound
	case proto.OpRemove:
		k.o, k.refusal = s.remove, store.ErrNotFound
	case proto.OpHave:
		k.o, k.refusal = s.have, store.ErrNotFound
	default:
		countedPool.Put(k)
		return false
	}
	if !startWith(a, c, k) {
		*k = counted{}
		countedPool.Put(k)
		return false
	}
	return true
}

// startWith starts c on a with k told of its completion in place of
// c.Done (k passes it on); false, c as it was, when a does not start it.
func startWith(a store.Async, c *store.Call, k store.Completion) bool {
	next := c.Done
	c.Done = k
	if a.Start(c) {
		return true
	}
	c.Done = next
	return false
}

// Complete counts the call and passes it on.
func (k *counted) Complete(c *store.Call) {
	k.s.c.done(k.o, k.stripe, k.t, result(c.Err, k.refusal))
	next := k.next
	*k = counted{}
	countedPool.Put(k)
	c.Done = next
	next.Complete(c)
}

// timed is a call of a wrapped backend in flight: when it began, and the
// Completion it replaced.
type timed struct {
	b    *backendStore
	o    op
	t    int64
	next store.Completion
}

var timedPool = sync.Pool{New: func() any { return new(timed) }}

// Start implements store.Async when the backend does: the call is timed
// and its error counted as the blocking methods' are, when it completes.
func (b *backendStore) Start(c *store.Call) bool {
	a, ok := b.next.(store.Async)
	if !ok {
		return false
	}
	k := timedPool.Get().(*timed)
	k.b, k.t, k.next = b, monoNow(), c.Done
	switch c.Op {
	case proto.OpAdd:
		k.o = opAdd
	case proto.OpGet:
		k.o = opGet
	case proto.OpRemove:
		k.o = opRemove
	case proto.OpHave:
		k.o = opHave
	default:
		timedPool.Put(k)
		return false
	}
	if !startWith(a, c, k) {
		*k = timed{}
		timedPool.Put(k)
		return false
	}
	return true
}

// Complete times the call and passes it on.
func (k *timed) Complete(c *store.Call) {
	k.b.done(k.o, k.t, c.Err)
	next := k.next
	*k = timed{}
	timedPool.Put(k)
	c.Done = next
	next.Complete(c)
}
