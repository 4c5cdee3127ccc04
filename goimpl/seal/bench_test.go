// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"fmt"
	"testing"
	"time"
)

// Session sizes: a TLS 1.3 ticket-less session without client certificate
// (~150 bytes), one carrying a peer certificate (~2 KB), the largest.
var benchSizes = []int{150, 2048, 32000}

func BenchmarkSeal(b *testing.B) {
	kr := ring(b, "k1 "+hexA)
	id := make([]byte, 32)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			data, dst := make([]byte, n), make([]byte, 0, n+Overhead(2))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				dst = kr.Seal(dst[:0], id, data)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(len(dst)-n), "overhead-bytes")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := ring(b, "k1 "+hexA)
	id := make([]byte, 32)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			sealed := kr.Seal(nil, id, make([]byte, n))
			dst := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = kr.Open(dst[:0], id, sealed); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkStore is one ADD and one GET of a fresh session through the
// wrapper (sealed) and straight to the wrapped store (plain).
func BenchmarkStore(b *testing.B) {
	for _, n := range benchSizes[:2] {
		for _, sealed := range []bool{false, true} {
			b.Run(fmt.Sprintf("bytes=%d/sealed=%v", n, sealed), func(b *testing.B) {
				mem := newMem()
				var s interface {
					Add(_ ctxT, id, data []byte, ttl time.Duration) error
					Get(_ ctxT, id, dst []byte) ([]byte, error)
				} = mem
				if sealed {
					s = New(mem, ring(b, "k1 "+hexA), Options{})
				}
				data, dst := make([]byte, n), make([]byte, 0, n)
				id := make([]byte, 32)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
					if err := s.Add(ctx, id, data, time.Minute); err != nil {
						b.Fatal(err)
					}
					var err error
					if dst, err = s.Get(ctx, id, dst[:0]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}
