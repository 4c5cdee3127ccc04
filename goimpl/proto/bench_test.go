// SPDX-License-Identifier: Apache-2.0

package proto

import (
	"bytes"
	"testing"
)

func benchPayload(n int) []byte { return bytes.Repeat([]byte{0x5a}, n) }

func BenchmarkEncode(b *testing.B) {
	for _, n := range []int{200, 2048, 32768} {
		p := benchPayload(n)
		buf := make([]byte, 0, MaxMessageSize)
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				buf, _ = AppendMessage(buf[:0], &Message{UID: uint32(i), Op: OpGet, Payload: p})
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{200, 2048, 32768} {
		enc, _ := AppendMessage(nil, &Message{UID: 1, Op: OpGet, Payload: benchPayload(n)})
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			var a Assembler
			for i := 0; i < b.N; i++ {
				if m, _, err := a.Decode(enc); m == nil || err != nil {
					b.Fatal("decode failed")
				}
			}
		})
	}
}

func sizeName(n int) string {
	switch n {
	case 200:
		return "200B"
	case 2048:
		return "2KiB"
	}
	return "32KiB"
}
