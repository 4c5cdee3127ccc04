// SPDX-License-Identifier: Apache-2.0

// Package storetest is the conformance suite of store.Store: the distcache
// rules as a table of tests that every store (the in-memory cache, the
// distcache upstream, Redis, wrappers) must pass. A store's own test file
// calls Run, or RunClock when the store can read a clock the suite moves.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// Clock is a settable clock for RunClock's stores: Now returns what the
// suite last set.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// base is where RunClock's clock starts: 456 µs past a millisecond, so the
// millisecond truncation of an add's time is visible.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535456000, time.UTC)

// Run checks the store newStore returns (a fresh, empty one for each
// subtest; the suite closes it) against every rule of store.Store. Expiry is
// checked on the real clock with short lifetimes, by polling.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	open := func(t *testing.T) store.Store {
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
	t.Run("ExpiryRealTime", func(t *testing.T) { expiryRealTime(t, open(t)) })
}

// RunClock is Run for a store that reads the time from now: every rule, and
// expiry to the microsecond on a clock the suite sets (an entry added at t
// with a ttl lives until t truncated to the millisecond plus the ttl,
// inclusive, and is gone 1 µs later; reads never extend it).
func RunClock(t *testing.T, newStore func(t *testing.T, now func() time.Time) store.Store) {
	open := func(t *testing.T) (store.Store, *Clock) {
		clk := &Clock{now: base}
		s := newStore(t, clk.Now)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, clk
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := open(t)
			c.run(t, s)
		})
	}
	for _, c := range clockCases {
		t.Run(c.name, func(t *testing.T) {
			s, clk := open(t)
			c.run(t, s, clk)
		})
	}
}

var bg = context.Background()

const hour = time.Hour

type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

type clockCase struct {
	name string
	run  func(t *testing.T, s store.Store, clk *Clock)
}

// id makes a distinct session id from a label.
func id(label string, n int) []byte { return []byte(fmt.Sprintf("%s-%06d", label, n)) }

func mustAdd(t *testing.T, s store.Store, id, data []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Add(bg, id, data, ttl); err != nil {
		t.Fatalf("Add(%q, %d bytes, %v): %v", id, len(data), ttl, err)
	}
}

func wantData(t *testing.T, s store.Store, id, data []byte) {
	t.Helper()
	got, err := s.Get(bg, id, nil)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %d bytes", id, err, len(data))
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Get(%q) = %d bytes %.16q, want %d bytes %.16q", id, len(got), got, len(data), data)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func wantGone(t *testing.T, s store.Store, id []byte) {
	t.Helper()
	wantErr(t, fmt.Sprintf("Have(%q)", id), s.Have(bg, id), store.ErrNotFound)
	got, err := s.Get(bg, id, nil)
	wantErr(t, fmt.Sprintf("Get(%q)", id), err, store.ErrNotFound)
	if len(got) != 0 {
		t.Fatalf("Get(%q) of a missing entry returned %d bytes", id, len(got))
	}
}

var cases = []testCase{
	{"AddGetHave", func(t *testing.T, s store.Store) {
		k, d := id("agh", 1), []byte("session data")
		mustAdd(t, s, k, d, hour)
		wantData(t, s, k, d)
		if err := s.Have(bg, k); err != nil {
			t.Fatalf("Have: %v", err)
		}
		// Have and Get leave the entry in place.
		wantData(t, s, k, d)
	}},
	{"GetAppendsToDst", func(t *testing.T, s store.Store) {
		k, d := id("dst", 1), []byte("the data")
		mustAdd(t, s, k, d, hour)
		for _, dst := range [][]byte{nil, []byte("prefix:"), make([]byte, 3, 64)} {
			pre := append([]byte(nil), dst...)
			got, err := s.Get(bg, k, dst)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if want := append(pre, d...); !bytes.Equal(got, want) {
				t.Fatalf("Get into %q = %q, want %q", pre, got, want)
			}
		}
		got, err := s.Get(bg, id("dst", 2), []byte("keep"))
		wantErr(t, "Get of a missing id", err, store.ErrNotFound)
		if len(got) > 4 || (len(got) == 4 && string(got) != "keep") {
			t.Fatalf("Get of a missing id returned %q", got)
		}
	}},
	{"Copies", func(t *testing.T, s store.Store) {
		k, d := id("copy", 1), []byte("original")
		kc, dc := append([]byte(nil), k...), append([]byte(nil), d...)
		mustAdd(t, s, kc, dc, hour)
		kc[0], dc[0] = 'X', 'X' // the store keeps its own copies
		wantData(t, s, k, d)
		got, _ := s.Get(bg, k, nil)
		got[0] = 'Y'
		wantData(t, s, k, d)
	}},
	{"DuplicateKeepsFirst", func(t *testing.T, s store.Store) {
		k := id("dup", 1)
		mustAdd(t, s, k, []byte("first"), hour)
		wantErr(t, "second Add", s.Add(bg, k, []byte("second"), 2*hour), store.ErrDuplicate)
		wantData(t, s, k, []byte("first"))
	}},
	{"DuplicateRace", func(t *testing.T, s store.Store) {
		for round := 0; round < 8; round++ {
			k := id("duprace", round)
			errs := make([]error, 64)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[g] = s.Add(bg, k, []byte(fmt.Sprintf("data of %d", g)), hour)
				}()
			}
			close(start)
			wg.Wait()
			winner := -1
			for g, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("round %d: adds %d and %d both stored", round, winner, g)
				case err == nil:
					winner = g
				case !errors.Is(err, store.ErrDuplicate):
					t.Fatalf("round %d: add %d: %v", round, g, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no add stored", round)
			}
			wantData(t, s, k, []byte(fmt.Sprintf("data of %d", winner)))
		}
	}},
	{"Miss", func(t *testing.T, s store.Store) {
		k := id("miss", 1)
		wantGone(t, s, k)
		wantErr(t, "Remove", s.Remove(bg, k), store.ErrNotFound)
		if _, err := s.Take(bg, k, nil); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnsupported) {
			t.Fatalf("Take of a missing id: %v", err)
		}
	}},
	{"RemoveThenAdd", func(t *testing.T, s store.Store) {
		k, other := id("rm", 1), id("rm", 2)
		mustAdd(t, s, k, []byte("one"), hour)
		mustAdd(t, s, other, []byte("other"), hour)
		if err := s.Remove(bg, k); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		wantGone(t, s, k)
		wantErr(t, "second Remove", s.Remove(bg, k), store.ErrNotFound)
		wantData(t, s, other, []byte("other")) // only k went
		mustAdd(t, s, k, []byte("two"), hour)  // the id is free again
		wantData(t, s, k, []byte("two"))
	}},
	{"Limits", func(t *testing.T, s store.Store) {
		maxID := bytes.Repeat([]byte{0xa5}, proto.MaxIDLen)
		maxData := bytes.Repeat([]byte("0123456789abcdef"), proto.MaxDataLen/16)
		for i, c := range []struct{ id, data []byte }{
			{[]byte{0}, []byte{0}},
			{maxID, maxData},
			{[]byte("one-byte-data"), []byte{0xff}},
		} {
			mustAdd(t, s, c.id, c.data, hour)
			wantData(t, s, c.id, c.data)
			if i == 1 {
				got, err := s.Get(bg, c.id, []byte{1, 2})
				if err != nil || len(got) != 2+len(c.data) {
					t.Fatalf("Get of a maximal entry into a 2-byte dst: %d bytes, %v", len(got), err)
				}
			}
		}
		mustAdd(t, s, id("week", 1), []byte("d"), proto.MaxExpiry*time.Millisecond)
		for _, c := range []struct {
			name     string
			id, data []byte
			ttl      time.Duration
		}{
			{"empty id", nil, []byte("d"), hour},
			{"65-byte id", make([]byte, proto.MaxIDLen+1), []byte("d"), hour},
			{"empty data", id("inv", 1), nil, hour},
			{"32769 bytes of data", id("inv", 2), make([]byte, proto.MaxDataLen+1), hour},
			{"negative ttl", id("inv", 3), []byte("d"), -time.Millisecond},
			{"ttl over 7 days", id("inv", 4), []byte("d"), proto.MaxExpiry*time.Millisecond + time.Millisecond},
		} {
			wantErr(t, "Add with "+c.name, s.Add(bg, c.id, c.data, c.ttl), store.ErrInvalid)
		}
		wantGone(t, s, id("inv", 1))
		wantGone(t, s, id("inv", 2))
		for _, bad := range [][]byte{nil, make([]byte, proto.MaxIDLen+1)} {
			wantGone(t, s, bad)
			wantErr(t, "Remove of an out-of-range id", s.Remove(bg, bad), store.ErrNotFound)
		}
	}},
	{"BinaryIDs", func(t *testing.T, s store.Store) {
		ids := [][]byte{{'a'}, {'a', 0}, {0, 'a'}, {0}, {0, 0}, {0xff, 0xfe}, []byte("A")}
		for i, k := range ids {
			mustAdd(t, s, k, []byte{byte(i + 1)}, hour)
		}
		for i, k := range ids {
			wantData(t, s, k, []byte{byte(i + 1)})
		}
	}},
	{"ManyEntries", func(t *testing.T, s store.Store) {
		const n = 2000
		for i := 0; i < n; i++ {
			mustAdd(t, s, id("many", i), bytes.Repeat([]byte{byte(i)}, 1+i%300), hour)
		}
		for i := 0; i < n; i++ {
			wantData(t, s, id("many", i), bytes.Repeat([]byte{byte(i)}, 1+i%300))
		}
	}},
	{"Take", func(t *testing.T, s store.Store) {
		k, d := id("take", 1), []byte("single use")
		mustAdd(t, s, k, d, hour)
		got, err := s.Take(bg, k, []byte("p:"))
		if errors.Is(err, store.ErrUnsupported) {
			wantData(t, s, k, d) // an unsupported Take removes nothing
			return
		}
		if err != nil || string(got) != "p:single use" {
			t.Fatalf("Take = %q, %v", got, err)
		}
		wantGone(t, s, k)
		_, err = s.Take(bg, k, nil)
		wantErr(t, "second Take", err, store.ErrNotFound)
	}},
	{"TakeRace", func(t *testing.T, s store.Store) {
		for round := 0; round < 10; round++ {
			k, d := id("takerace", round), []byte(fmt.Sprintf("ticket %d", round))
			mustAdd(t, s, k, d, hour)
			type res struct {
				data []byte
				err  error
			}
			rs := make([]res, 64)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range rs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					rs[g].data, rs[g].err = s.Take(bg, k, nil)
				}()
			}
			close(start)
			wg.Wait()
			winners, unsupported := 0, 0
			for g, r := range rs {
				switch {
				case r.err == nil:
					winners++
					if !bytes.Equal(r.data, d) {
						t.Fatalf("round %d: take %d got %q, want %q", round, g, r.data, d)
					}
				case errors.Is(r.err, store.ErrUnsupported):
					unsupported++
				case !errors.Is(r.err, store.ErrNotFound):
					t.Fatalf("round %d: take %d: %v", round, g, r.err)
				}
			}
			if unsupported == len(rs) {
				wantData(t, s, k, d)
				return
			}
			if unsupported > 0 || winners != 1 {
				t.Fatalf("round %d: %d takes got the entry, %d unsupported; want exactly one winner", round, winners, unsupported)
			}
			wantGone(t, s, k)
		}
	}},
	{"ConcurrentMixed", func(t *testing.T, s store.Store) {
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					k := id(fmt.Sprintf("mix%d", g), i)
					d := []byte(fmt.Sprintf("%d/%d", g, i))
					if err := s.Add(bg, k, d, hour); err != nil {
						errc <- fmt.Errorf("Add %q: %v", k, err)
						return
					}
					got, err := s.Get(bg, k, nil)
					if err != nil || !bytes.Equal(got, d) {
						errc <- fmt.Errorf("Get %q = %q, %v", k, got, err)
						return
					}
					if i%2 == 0 {
						if err := s.Remove(bg, k); err != nil {
							errc <- fmt.Errorf("Remove %q: %v", k, err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		for g := 0; g < 8; g++ {
			for i := 0; i < 200; i++ {
				k := id(fmt.Sprintf("mix%d", g), i)
				if i%2 == 0 {
					wantGone(t, s, k)
				} else {
					wantData(t, s, k, []byte(fmt.Sprintf("%d/%d", g, i)))
				}
			}
		}
	}},
}

// expiryRealTime checks expiry on the real clock: the entry is not gone
// before its ttl has passed, reads do not extend it, it is gone within a
// bounded time after, and its id is free again.
func expiryRealTime(t *testing.T, s store.Store) {
	const ttl = 300 * time.Millisecond
	k, d := id("expire", 1), []byte("short-lived")
	before := time.Now()
	mustAdd(t, s, k, d, ttl)
	if err := s.Have(bg, k); err != nil {
		// Only a store that lost the entry early fails here: less than
		// the ttl can have passed unless the machine stalled for it.
		if time.Since(before) < ttl-time.Millisecond {
			t.Fatalf("Have right after Add: %v", err)
		}
	}
	deadline := before.Add(ttl + 5*time.Second)
	for {
		_, err := s.Get(bg, k, nil) // reads must not extend the lifetime
		returned := time.Now()
		if errors.Is(err, store.ErrNotFound) {
			// The entry was added after before, so it expires no
			// earlier than before+ttl (the store may truncate its add
			// time to the millisecond).
			if early := before.Add(ttl - time.Millisecond).Sub(returned); early > 0 {
				t.Fatalf("entry with a %v ttl gone %v early", ttl, early)
			}
			break
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if returned.After(deadline) {
			t.Fatalf("entry with a %v ttl still there after %v", ttl, returned.Sub(before))
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	wantGone(t, s, k)
	mustAdd(t, s, k, []byte("again"), hour)
	wantData(t, s, k, []byte("again"))
}

var clockCases = []clockCase{
	{"ExpiryToTheMicrosecond", func(t *testing.T, s store.Store, clk *Clock) {
		k := id("exp", 1)
		mustAdd(t, s, k, []byte("d"), 1000*time.Millisecond)
		expiry := base.Truncate(time.Millisecond).Add(time.Second)
		clk.Set(base.Add(500 * time.Millisecond))
		wantData(t, s, k, []byte("d")) // a read in between extends nothing
		clk.Set(expiry)
		wantData(t, s, k, []byte("d"))
		if err := s.Have(bg, k); err != nil {
			t.Fatalf("Have at the expiry instant: %v", err)
		}
		clk.Set(expiry.Add(time.Microsecond))
		wantGone(t, s, k)
		wantErr(t, "Remove after expiry", s.Remove(bg, k), store.ErrNotFound)
		mustAdd(t, s, k, []byte("new"), time.Second) // an expired id is free
		wantData(t, s, k, []byte("new"))
	}},
	{"ExpiredIsNotDuplicate", func(t *testing.T, s store.Store, clk *Clock) {
		k := id("expdup", 1)
		mustAdd(t, s, k, []byte("old"), 2*time.Second)
		clk.Set(base.Add(2 * time.Second)) // trunc(base)+2s < base+2s
		mustAdd(t, s, k, []byte("new"), time.Second)
		wantData(t, s, k, []byte("new"))
	}},
	{"TakeAfterExpiry", func(t *testing.T, s store.Store, clk *Clock) {
		k := id("exptake", 1)
		mustAdd(t, s, k, []byte("d"), time.Second)
		clk.Set(base.Add(time.Second))
		if _, err := s.Take(bg, k, nil); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnsupported) {
			t.Fatalf("Take of an expired entry: %v", err)
		}
	}},
	{"ExpiryOrderMixed", func(t *testing.T, s store.Store, clk *Clock) {
		// Entries with different lifetimes each go at their own time.
		for i := 1; i <= 20; i++ {
			mustAdd(t, s, id("ord", i), []byte{byte(i)}, time.Duration(i)*100*time.Millisecond)
		}
		start := base.Truncate(time.Millisecond)
		for step := 1; step <= 20; step++ {
			clk.Set(start.Add(time.Duration(step)*100*time.Millisecond + time.Microsecond))
			for i := 1; i <= 20; i++ {
				if i <= step {
					wantGone(t, s, id("ord", i))
				} else {
					wantData(t, s, id("ord", i), []byte{byte(i)})
				}
			}
		}
	}},
}
