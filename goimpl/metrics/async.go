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
	c.Done = k
	if !a.Start(c) {
		c.Done = k.next
		*k = counted{}
		countedPool.Put(k)
		return false
	}
	return true
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
