// SPDX-License-Identifier: Apache-2.0

package proto

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the stream decoder. It must never
// panic, must consume only whole frames, and every message it yields must
// re-encode to bytes that decode to the same message.
func FuzzDecode(f *testing.F) {
	for _, ex := range workedExamples {
		b, _ := AppendMessage(nil, &ex.msg)
		f.Add(b)
	}
	big, _ := AppendMessage(nil, &Message{Op: OpGet, Payload: make([]byte, 4100)})
	f.Add(big)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0, 0x10, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Assembler
		rest := b
		for {
			m, n, err := a.Decode(rest)
			if n < 0 || n > len(rest) {
				t.Fatalf("consumed %d of %d", n, len(rest))
			}
			rest = rest[n:]
			if err != nil {
				if !IsCorrupt(err) {
					t.Fatalf("non-corrupt error %v", err)
				}
				return
			}
			if m == nil {
				return
			}
			if len(m.Payload) > MaxPayload || !m.Op.Known() {
				t.Fatalf("invalid message %+v", m)
			}
			enc, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			var a2 Assembler
			m2, k, err := a2.Decode(enc)
			if err != nil || m2 == nil || k != len(enc) || m2.UID != m.UID || m2.Op != m.Op ||
				m2.Response != m.Response || !bytes.Equal(m2.Payload, m.Payload) {
				t.Fatalf("round trip failed")
			}
		}
	})
}
