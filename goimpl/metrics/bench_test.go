// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/store"
)

// BenchmarkStoreGet measures what the request wrapper adds to a store
// call: metrics=off is the store alone, metrics=on the same store wrapped.
// Run in parallel, so contended counters show.
func BenchmarkStoreGet(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%s", map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
			var st store.Store = newMapStore()
			if on {
				st = New(Options{Program: "dc_server"}).WrapStore(st, Distcache)
			}
			ctx := context.Background()
			for i := range 256 {
				st.Add(ctx, []byte{byte(i)}, make([]byte, 200), time.Minute)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]byte, 0, 256)
				id := []byte{0}
				for i := 0; pb.Next(); i++ {
					id[0] = byte(i)
					st.Get(ctx, id, dst)
				}
			})
		})
	}
}
