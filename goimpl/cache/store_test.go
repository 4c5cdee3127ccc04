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
