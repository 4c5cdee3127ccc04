package main

import (
	"encoding/binary"
	"os"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
	cache "github.com/distcache-go/distcache/goimpl/server"
)

// backend is the session cache and the request handler of goimpl/server,
// plus the -minlifetime rule.
type backend struct {
	cache *cache.ShardedCache
	// shortLifetime replaces ADD timeouts under one second (0 = off).
	shortLifetime uint32
}

func newBackend(cfg *config) *backend {
	return &backend{
		cache: cache.NewCache(cache.Config{
			MaxSessions: int(cfg.sessions),
			MaxBytes:    cfg.maxBytes,
		}),
		shortLifetime: uint32(cfg.minLifetime * 1000),
	}
}

// handle appends the response payload for one request to out; ok is false
// when the connection must be closed without an answer. An ADD whose
// timeout is under 1000 ms is taken as "lifetime not given" (httpd 2.4
// sends only the millisecond remainder of its lifetime) and stored for
// -minlifetime seconds instead.
func (b *backend) handle(now time.Time, m *proto.Message, out []byte) ([]byte, bool) {
	if m.Op == proto.OpAdd && b.shortLifetime > 0 && len(m.Payload) >= 8 &&
		binary.BigEndian.Uint32(m.Payload) < 1000 {
		binary.BigEndian.PutUint32(m.Payload, b.shortLifetime)
	}
	return cache.Handle(b.cache, now, m, out)
}

func (b *backend) items(now time.Time) int { return b.cache.NumItems(now) }

func (b *backend) hitsMisses() (uint64, uint64) {
	st := b.cache.Stats()
	return st.Hits, st.Misses
}

// startSessiond will serve stunnel's sessiond protocol from the same cache
// once goimpl/sessiond has its server.
func startSessiond(cfg *config, be *backend, _ int) (func(), *os.File, error) {
	return nil, nil, nil
}
