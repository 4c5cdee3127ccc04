// SPDX-License-Identifier: Apache-2.0

package main

import (
	"io"
	"testing"

	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// FuzzTracer: any byte stream, cut anywhere, in either direction, is
// traced without a panic.
func FuzzTracer(f *testing.F) {
	f.Add(tooltest.Request(1, proto.OpAdd, tooltest.AddPayload(1000, []byte("id"), []byte("data"))), 3)
	f.Add(tooltest.Request(2, proto.OpGet, make([]byte, 5000)), 2070)
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"), 4)
	f.Add([]byte{0, 0x11, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0xff, 0xff}, 13)
	f.Add([]byte{0, 0x11, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 20)
	out.Lock()
	out.w = io.Discard
	out.Unlock()
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		for _, dir := range []bool{false, true} {
			tr := &tracer{dir: "client->server"}
			if dir {
				tr.dir = "server->client"
			}
			if cut < 0 || cut > len(b) {
				cut = len(b) / 2
			}
			tr.feed(b[:cut])
			tr.feed(b[cut:])
			tr.end()
			if tr.broken && tr.raw == 0 && len(b) > 0 {
				t.Fatalf("broken stream with no raw bytes counted")
			}
		}
	})
}
