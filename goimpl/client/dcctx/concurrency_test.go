// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"fmt"
	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Many goroutines on one Ctx (Apache's event MPM): every answer must be the
// one for that goroutine's own request.
func TestConcurrentHammer(t *testing.T) {
	cases := []struct {
		nw    string
		flags uint32
		iters int
	}{
		{"unix", 0, 20},
		{"unix", FlagPersistent, 80},
		{"unix", FlagPersistent | FlagRetry | FlagPIDCheck, 80},
		{"tcp", FlagPersistent, 60},
		{"tcp", 0, 10},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/flags=%#x", tc.nw, tc.flags), func(t *testing.T) {
			s := fake.Start(t, tc.nw, "", nil)
			c := newCtx(t, s.Target, tc.flags, nil)
			const workers = 32
			var mismatches, failures atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					buf := make([]byte, 4096)
					for i := 0; i < tc.iters; i++ {
						id := []byte(fmt.Sprintf("w%02d-i%04d", w, i))
						// Sizes vary so that a mixed-up answer cannot match by length.
						data := bytes.Repeat([]byte(fmt.Sprintf("<%s>", id)), 1+(w*7+i)%300)
						if !c.AddSession(id, data, 300000) {
							failures.Add(1)
							continue
						}
						used, ok := c.GetSession(id, buf)
						switch {
						case !ok:
							failures.Add(1)
						case used != len(data) || !bytes.Equal(buf[:min(used, len(buf))], data[:min(used, len(buf))]):
							mismatches.Add(1)
						}
						if c.HasSession(id) != 1 {
							mismatches.Add(1)
						}
						if !c.RemoveSession(id) {
							mismatches.Add(1)
						}
						if c.HasSession(id) != 0 {
							mismatches.Add(1)
						}
					}
				}(w)
			}
			wg.Wait()
			if m, f := mismatches.Load(), failures.Load(); m != 0 || f != 0 {
				t.Fatalf("%d mismatched answers, %d failed operations", m, f)
			}
			if got, want := s.Requests.Load(), int32(workers*tc.iters*5); got != want {
				t.Fatalf("server saw %d requests, want %d", got, want)
			}
			// At most 32 operations are in flight and the pool keeps 32
			// idle connections, so none is ever closed and redialled.
			if tc.flags&FlagPersistent != 0 && s.Accepts.Load() > workers {
				t.Fatalf("persistent ctx opened %d connections for %d workers", s.Accepts.Load(), workers)
			}
		})
	}
}

// Reget under concurrency never returns another id's data.
func TestConcurrentReget(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent, nil)
	const workers = 16
	for w := 0; w < workers; w++ {
		if !c.AddSession([]byte(fmt.Sprint("rg", w)), bytes.Repeat([]byte{byte('a' + w)}, 100+w), 300000) {
			t.Fatal("add failed")
		}
	}
	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := []byte(fmt.Sprint("rg", w))
			want := bytes.Repeat([]byte{byte('a' + w)}, 100+w)
			buf := make([]byte, 256)
			for i := 0; i < 100; i++ {
				if _, ok := c.GetSession(id, buf); !ok {
					bad.Add(1)
				}
				if used, ok := c.RegetSession(id, buf); ok && !bytes.Equal(buf[:used], want) {
					bad.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad get/reget results", bad.Load())
	}
}

// PIDCHECK: a changed pid drops the idle connections once, then the new
// pid is recorded (EDGES E-33: the original reconnected on every operation).
func TestPIDCheck(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent|FlagPIDCheck, nil)
	if c.HasSession([]byte("x")) != 0 || s.Accepts.Load() != 1 {
		t.Fatal("first op")
	}
	c.pid.Store(int64(os.Getpid()) + 1) // as if this were a forked child
	for i := 0; i < 3; i++ {
		if c.HasSession([]byte("x")) != 0 {
			t.Fatal("has failed after a pid change")
		}
	}
	if got := s.Accepts.Load(); got != 2 {
		t.Fatalf("connections after a pid change and 3 ops = %d, want 2", got)
	}
	if c.pid.Load() != int64(os.Getpid()) {
		t.Fatal("pid not updated")
	}
	// Without PIDCHECK the pid is not looked at.
	p := newCtx(t, s.Target, FlagPersistent, nil)
	p.pid.Store(1)
	p.HasSession([]byte("x"))
	p.HasSession([]byte("x"))
	if got := s.Accepts.Load(); got != 3 {
		t.Fatalf("connections = %d, want 3", got)
	}
}

// E-8: uids wrap modulo 2^32 and keep matching.
func TestUIDWrap(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent, nil)
	c.uid.Store(1<<32 - 3)
	for i := 0; i < 6; i++ {
		if c.HasSession([]byte("x")) != 0 {
			t.Fatalf("op %d across the uid wrap failed", i)
		}
	}
	if got := c.uid.Load(); got != 3 {
		t.Fatalf("uid = %d, want 3", got)
	}
}

func TestCloseWhileInUse(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c, err := New(s.Target, FlagPersistent, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				c.HasSession([]byte("x"))
			}
		}()
	}
	c.Close()
	wg.Wait()
	c.Close()
	if c.HasSession([]byte("x")) != -1 {
		t.Fatal("op on a closed ctx did not fail")
	}
	c.mu.Lock()
	n := len(c.idle)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idle connections left after Close", n)
	}
}

// After a server restart every idle connection of the pool is dead: one
// failed operation (without RETRY) drops them all, not one per operation.
func TestRestartDropsWholePool(t *testing.T) {
	store := fake.NewStore()
	s := fake.Start(t, "unix", "", store)
	c := newCtx(t, s.Target, FlagPersistent|FlagLate, nil)
	var conns []link
	for i := 0; i < 4; i++ {
		cn, err := c.dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	for _, cn := range conns {
		c.release(cn, true)
	}
	where := s.Where()
	s.Stop()
	s = fake.Start(t, "unix", where, store)
	if got := c.HasSession([]byte("x")); got != -1 {
		t.Fatalf("first op after restart: has = %d, want -1", got)
	}
	for i := 0; i < 4; i++ {
		if got := c.HasSession([]byte("x")); got != 0 {
			t.Fatalf("op %d after the failure: has = %d, want 0", i, got)
		}
	}
}
