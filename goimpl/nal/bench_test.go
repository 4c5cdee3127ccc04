// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSelectRound measures one select round (Select plus IO on every
// bound connection) with one active pair among idle ones: a 64-byte
// message goes from a to b per iteration.
func BenchmarkSelectRound(b *testing.B) {
	for _, idlePairs := range []int{0, 100, 500} {
		b.Run(fmt.Sprintf("idle=%d", 2*idlePairs), func(b *testing.B) {
			var lim unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
			if lim.Cur < uint64(2*idlePairs+100) {
				b.Skip("RLIMIT_NOFILE too low")
			}
			sel := NewSelector()
			defer sel.Free()
			var all []*Connection
			for i := 0; i <= idlePairs; i++ {
				x, y := NewConnection(), NewConnection()
				x.CreatePair(y, 4096)
				x.AddToSelector(sel)
				y.AddToSelector(sel)
				all = append(all, x, y)
			}
			defer func() {
				for _, c := range all {
					c.Free()
				}
			}()
			a, c := all[0], all[1]
			msg := make([]byte, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Send().Write(msg)
				for c.Read().Used() < 64 {
					sel.Select(1e6, true)
					for _, x := range all {
						if !x.IO() {
							b.Fatal("connection died")
						}
					}
				}
				c.Read().Reset()
			}
		})
	}
}

// BenchmarkAddressCreate is a C program's new/create/free cycle of an
// address (the cgo layer's CreateView of a C string): after the first,
// no parse and no allocation.
func BenchmarkAddressCreate(b *testing.B) {
	for _, s := range []string{"IP:9001", "IP:127.0.0.1:9001", "UNIX:/tmp/foo"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var a Address
				if !a.CreateView(s, 2048) {
					b.Fatal("create failed")
				}
			}
		})
	}
}
