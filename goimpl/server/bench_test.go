// SPDX-License-Identifier: Apache-2.0

package server

import (
	"encoding/binary"
	"testing"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/nal"
	"github.com/distcache-go/distcache/goimpl/plug"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/internal/cpumeter"
)

// benchKey writes entry number i into the last 8 bytes of a 32-byte id
// (the size of a TLS session id).
func benchKey(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf[24:], uint64(i))
	return buf
}

// filled returns a cache of n live 200-byte sessions, all added at t0 with
// the same one-hour lifetime (as a TLS server does).
func filled(cfg cache.Config, n int) *cache.Cache {
	c := cache.New(cfg)
	key, data := make([]byte, 32), make([]byte, 200)
	for i := 0; i < n; i++ {
		c.Add(t0, 3600000, benchKey(key, i), data)
	}
	return c
}

// BenchmarkHandleGet is one GET request through Handle on a 100k cache.
func BenchmarkHandleGet(b *testing.B) {
	const n = 100000
	c := filled(cache.Config{}, n)
	key := make([]byte, 32)
	m := &proto.Message{Op: proto.OpGet}
	var out []byte
	defer cpumeter.Start(b)()
	for i := 0; i < b.N; i++ {
		m.Payload = benchKey(key, i%n)
		var ok bool
		if out, ok = Handle(c, t0, m, out); !ok || len(out) != 200 {
			b.Fatal("bad answer")
		}
	}
}

// BenchmarkServerRoundTrip is one GET (200-byte hit) through a Server and a
// client plug over a unix socket pair, both driven by this goroutine: the
// request path of DC_SERVER_clients_io without the network's latency
// dominating (no other goroutine to wake).
func BenchmarkServerRoundTrip(b *testing.B) {
	srv := NewWith(1000, NewDefaultCache)
	sel := nal.NewSelector()
	a, c := nal.NewConnection(), nal.NewConnection()
	if !a.CreatePair(c, 4096) || !a.AddToSelector(sel) || !c.AddToSelector(sel) {
		b.Fatal("setup")
	}
	defer func() { srv.Free(); sel.Free() }()
	srv.NewClient(a, ClientFlagInServer)
	p := plug.New(c, plug.FlagToServer)
	defer p.Free()
	key := make([]byte, 32)
	srv.Cache().Add(t0, 3600000, key, make([]byte, 200))
	defer cpumeter.Start(b)()
	for i := 0; i < b.N; i++ {
		if !p.Write(false, uint32(i), plug.CmdGet, key) || !p.Commit() {
			b.Fatal("write")
		}
		for {
			p.IO()
			if _, _, data, ok := p.Read(false); ok {
				if len(data) != 200 {
					b.Fatal("bad answer")
				}
				p.Consume()
				break
			}
			sel.Select(1000000, true)
			srv.ClientsIO(t0)
		}
	}
}
