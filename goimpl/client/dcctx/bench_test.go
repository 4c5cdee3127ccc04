// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"testing"

	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
)

// BenchmarkRoundTrip measures one GET of a 200-byte session over a unix
// socket against the in-test server: with a persistent (pooled) context and
// with a new connection per operation (flags 0, what Apache uses), over
// each transport.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name  string
		flags uint32
		tr    Transport
	}{
		{"mode=persistent/transport=caller", FlagPersistent, TransportCaller},
		{"mode=per-op/transport=caller", 0, TransportCaller},
		{"mode=persistent/transport=net", FlagPersistent, TransportNet},
		{"mode=per-op/transport=net", 0, TransportNet},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := fake.Start(b, "unix", "", nil)
			c := newCtx(b, s.Target, bc.flags, &Options{ConnectTimeout: testOptions.ConnectTimeout, IOTimeout: testOptions.IOTimeout, Transport: bc.tr})
			id, data := []byte("bench-session-id-0123456789abcdef"), bytes.Repeat([]byte{0x5a}, 200)
			if !c.AddSession(id, data, 300000) {
				b.Fatal("add failed")
			}
			buf := make([]byte, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if used, ok := c.GetSession(id, buf); !ok || used != len(data) {
					b.Fatal("get failed")
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			s := fake.Start(b, "unix", "", nil)
			c := newCtx(b, s.Target, bc.flags, nil)
			id, data := []byte("bench-session-id-0123456789abcdef"), bytes.Repeat([]byte{0x5a}, 200)
			if !c.AddSession(id, data, 300000) {
				b.Fatal("add failed")
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 1024)
				for pb.Next() {
					if used, ok := c.GetSession(id, buf); !ok || used != len(data) {
						b.Error("get failed")
						return
					}
				}
			})
		})
	}
}

// BenchmarkRoundTripDCServer is BenchmarkRoundTrip against the built
// dc_server (when DC_BIN is set).
func BenchmarkRoundTripDCServer(b *testing.B) {
	bin := toolPath(b, "dc_server")
	sock := fake.ShortTempDir(b) + "/srv"
	startTool(b, sock, bin, "-listen", "UNIX:"+sock)
	for _, bc := range []struct {
		name  string
		flags uint32
	}{
		{"mode=persistent", FlagPersistent},
		{"mode=per-op", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCtx(b, "UNIX:"+sock, bc.flags, nil)
			id, data := []byte("bench-"+bc.name), bytes.Repeat([]byte{0x5a}, 200)
			c.AddSession(id, data, 300000) // fails as a duplicate when b.Run repeats
			buf := make([]byte, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if used, ok := c.GetSession(id, buf); !ok || used != len(data) {
					b.Fatal("get failed")
				}
			}
		})
	}
}

// BenchmarkCycleDCServer is one ADD, GET, HAS and REMOVE of a 200-byte
// session per iteration, persistent, against the built dc_server (when
// DC_BIN is set): the server is another process, so the allocations
// reported are the client's own (0 per cycle).
func BenchmarkCycleDCServer(b *testing.B) {
	bin := toolPath(b, "dc_server")
	sock := fake.ShortTempDir(b) + "/srv"
	startTool(b, sock, bin, "-listen", "UNIX:"+sock)
	c := newCtx(b, "UNIX:"+sock, FlagPersistent, nil)
	id, data := []byte("bench-cycle"), bytes.Repeat([]byte{0x5a}, 200)
	buf := make([]byte, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !c.AddSession(id, data, 300000) {
			b.Fatal("add failed")
		}
		if used, ok := c.GetSession(id, buf); !ok || used != len(data) {
			b.Fatal("get failed")
		}
		if c.HasSession(id) != 1 || !c.RemoveSession(id) {
			b.Fatal("has or remove failed")
		}
	}
}
