// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"fmt"
	"testing"

	"github.com/distcache-go/distcache/goimpl/nal"
)

// BenchmarkRoundTrip measures one request and its response between a
// client and a server plug over a unix socket pair, driven by one
// selector as a single-threaded event loop would.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{100, 4096, 32768} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			ca, sa := nal.NewConnection(), nal.NewConnection()
			if !ca.CreatePair(sa, 32768) {
				b.Fatal("create_pair")
			}
			sel := nal.NewSelector()
			defer sel.Free()
			c, s := New(ca, FlagToServer), New(sa, 0)
			defer c.Free()
			defer s.Free()
			c.ToSelect(sel)
			s.ToSelect(sel)
			data := make([]byte, size)
			loop := func(done func() bool) {
				for !done() {
					if n, _ := sel.Select(1e6, true); n < 0 {
						continue
					}
					if !c.IO() || !s.IO() {
						b.Fatal("plug died")
					}
				}
			}
			b.SetBytes(int64(2 * size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Write(false, uint32(i), CmdGet, data)
				c.Commit()
				loop(func() bool { return s.ReadState() == ReadFull })
				uid, cmd, p, _ := s.Read(false)
				s.Write(false, uid, cmd, p)
				s.Commit()
				s.Consume()
				loop(func() bool { return c.ReadState() == ReadFull })
				c.Read(false)
				c.Consume()
			}
		})
	}
}
