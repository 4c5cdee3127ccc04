// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/store/storetest"
)

func TestStoreConformance(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unbounded": {},
		"one shard": {Shards: 1, MaxSessions: 100000},
		"bounded":   {MaxSessions: 1 << 20, MaxBytes: 1 << 30},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.RunClock(t, func(_ *testing.T, now func() time.Time) store.Store {
				cfg.Now = now
				return New(cfg).Store()
			})
		})
	}
}

func TestStoreRealClock(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return New(Config{}).Store() })
}

// TestStoreOnHit: Get and Take of the Store view report the age of the
// entry they find; misses and imported entries (age unknown) do not.
func TestStoreOnHit(t *testing.T) {
	now := time.Unix(1000, 0)
	var ages []time.Duration
	c := New(Config{Now: func() time.Time { return now }, OnHit: func(a time.Duration) { ages = append(ages, a) }})
	st := c.Store()
	ctx := t.Context()
	if err := st.Add(ctx, []byte("a"), []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Import([]Entry{{ID: []byte("imp"), Data: []byte("y"), Expiry: now.Add(time.Minute).UnixMicro()}})
	now = now.Add(7 * time.Second)
	st.Get(ctx, []byte("a"), nil)
	st.Get(ctx, []byte("nope"), nil)
	st.Get(ctx, []byte("imp"), nil)
	now = now.Add(3 * time.Second)
	st.Take(ctx, []byte("a"), nil)
	want := []time.Duration{7 * time.Second, 10 * time.Second}
	if len(ages) != len(want) || ages[0] != want[0] || ages[1] != want[1] {
		t.Errorf("ages %v, want %v", ages, want)
	}
}
