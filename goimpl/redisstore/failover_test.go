package redisstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/redisstore/redistest"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/store/storetest"
)

// The deadline under failover, and what a busy 2-core machine running
// the race detector may add to it.
const (
	failTimeout = 100 * time.Millisecond
	slack       = 150 * time.Millisecond
)

// failoverLoad runs concurrent add/get/have traffic on s, calls kill after
// a while, and keeps going until adds have succeeded for a second without
// a failure. It checks that every failure is ErrUnavailable (the daemons
// answer it as a miss or a failed add), that no operation outlives its
// deadline by more than slack, and that sessions added (and replicated,
// by replicated) before the kill are found after. It returns the time
// from the kill to the last failed add.
//
// check is a store on the same deployment with a generous deadline, for
// the writes before and the reads after: they check data, not deadlines.
func failoverLoad(t *testing.T, s, check *Store, replicated func(), kill func()) time.Duration {
	const before = 300
	for i := 0; i < before; i++ {
		if err := check.Add(bg, []byte(fmt.Sprintf("before-%d", i)), []byte(fmt.Sprintf("data %d", i)), time.Hour); err != nil {
			t.Fatalf("Add before the failover: %v", err)
		}
	}
	replicated()
	stall, stopWatch := redistest.StallWatch()
	defer stopWatch()
	var slowMu sync.Mutex
	var slow []string
	var slowest time.Duration
	var (
		stop      atomic.Bool
		killedAt  atomic.Int64 // unix ns
		lastFail  atomic.Int64 // unix ns of the last failed add after the kill
		lastOK    atomic.Int64 // unix ns of the last good add
		ops, fail atomic.Int64
		worst     atomic.Int64 // ns
		bad       = make(chan error, 16)
		wg        sync.WaitGroup
	)
	note := func(op string, err error, took time.Duration) {
		ops.Add(1)
		for w := worst.Load(); int64(took) > w && !worst.CompareAndSwap(w, int64(took)); w = worst.Load() {
		}
		if took > failTimeout+slack {
			slowMu.Lock()
			slow = append(slow, fmt.Sprintf("%s %v", op, took))
			slowest = max(slowest, took)
			slowMu.Unlock()
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			fail.Add(1)
			if !errors.Is(err, store.ErrUnavailable) {
				select {
				case bad <- fmt.Errorf("%s: %v (not ErrUnavailable)", op, err):
				default:
				}
			}
		}
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := []byte(fmt.Sprintf("load-%d-%d", g, i))
				start := time.Now()
				err := s.Add(bg, id, []byte("session"), time.Hour)
				note("Add", err, time.Since(start))
				now := time.Now().UnixNano()
				if err != nil && killedAt.Load() != 0 {
					lastFail.Store(now)
				} else if err == nil {
					lastOK.Store(now)
				}
				start = time.Now()
				_, err = s.Get(bg, id, nil)
				note("Get", err, time.Since(start))
				start = time.Now()
				err = s.Have(bg, []byte(fmt.Sprintf("before-%d", i%before)))
				note("Have", err, time.Since(start))
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // traffic before the kill
	killedAt.Store(time.Now().UnixNano())
	kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond) // polling interval
		lf, lo := lastFail.Load(), lastOK.Load()
		if lf != 0 && lo-lf > int64(time.Second) {
			break
		}
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("adds still failing %v after the kill", time.Since(time.Unix(0, killedAt.Load())))
		}
	}
	stop.Store(true)
	wg.Wait()
	close(bad)
	for err := range bad {
		t.Error(err)
	}
	stopWatch()
	// An operation may outlive its deadline by slack, plus the longest
	// time this process was kept from running.
	if len(slow) > 0 && slowest > failTimeout+slack+stall() {
		t.Errorf("%d operations over %v + %v slack (the process stalled at most %v): %v",
			len(slow), failTimeout, slack, stall(), slow[:min(len(slow), 10)])
	}
	recovery := time.Duration(lastFail.Load() - killedAt.Load())
	t.Logf("%d operations, %d failed (ErrUnavailable); adds failed for %v after the kill; slowest operation %v (deadline %v; the test process stalled up to %v)",
		ops.Load(), fail.Load(), recovery, time.Duration(worst.Load()), failTimeout, stall())
	for i := 0; i < before; i++ {
		id := []byte(fmt.Sprintf("before-%d", i))
		d, err := check.Get(bg, id, nil)
		if err != nil || string(d) != fmt.Sprintf("data %d", i) {
			t.Fatalf("replicated session %s after the failover: %q, %v", id, d, err)
		}
	}
	return recovery
}

func TestSentinel(t *testing.T) {
	redistest.Require(t)
	g := redistest.StartSentinelGroup(t, 2, 3, 300*time.Millisecond)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, g.Addr(), Options{}) })
	})
	t.Run("FailoverUnderLoad", func(t *testing.T) {
		s := open(t, g.Addr(), Options{Timeout: failTimeout})
		defer s.Close()
		check := open(t, g.Addr(), Options{Prefix: s.prefix})
		defer check.Close()
		old := g.Master(t)
		rec := failoverLoad(t, s, check, func() { redistest.WaitReplicated(t, old) }, old.Kill)
		if now, _ := g.MasterAddr(); now == old.Addr() {
			t.Fatalf("the sentinels still name the killed master %s", now)
		}
		// Sentinel needs down-after-milliseconds to notice, then an
		// election and the promotion.
		// (10 s: a loaded CI machine slows every step.)
		if limit := g.DownAfter + 10*time.Second; rec > limit {
			t.Errorf("writes failed for %v after the kill, over %v", rec, limit)
		}
		t.Logf("sentinel failover (down-after-milliseconds %v): writes back %v after kill -9", g.DownAfter, rec)
	})
}

func TestCluster(t *testing.T) {
	redistest.Require(t)
	const nodeTimeout = 500 * time.Millisecond
	c := redistest.StartCluster(t, 3, 1, nodeTimeout)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, c.Addr(), Options{}) })
	})
	t.Run("FailoverUnderLoad", func(t *testing.T) {
		s := open(t, c.Addr(), Options{Timeout: failTimeout})
		defer s.Close()
		check := open(t, c.Addr(), Options{Prefix: s.prefix})
		defer check.Close()
		ms := c.Masters(t)
		if len(ms) != 3 {
			t.Fatalf("%d masters, want 3", len(ms))
		}
		victim := ms[0]
		rec := failoverLoad(t, s, check, func() {
			for _, m := range ms {
				redistest.WaitReplicated(t, m)
			}
		}, victim.Kill)
		c.WaitOK(t, 10*time.Second)
		if n := len(c.Masters(t)); n != 3 {
			t.Errorf("%d live masters after the failover, want 3", n)
		}
		// A replica notices after cluster-node-timeout and waits up to
		// half a second more (plus its rank) before its election.
		if limit := nodeTimeout + 10*time.Second; rec > limit {
			t.Errorf("writes failed for %v after the kill, over %v", rec, limit)
		}
		t.Logf("cluster failover (cluster-node-timeout %v): writes back %v after kill -9", nodeTimeout, rec)
	})
}
