// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDatagram feeds one arbitrary datagram to a server with an empty cache.
// Whatever it is, the server must not panic; a malformed one is counted and
// unanswered; a well-formed one encodes back to the same bytes, a GET gets a
// "not found" with its key echoed, and a NEW is then found with its value.
// Seeds: testdata/fuzz/FuzzDatagram (each request type, the value size
// limits, every malformed class).
func FuzzDatagram(f *testing.F) {
	k := key(0x40)
	f.Add(newPacket(k, 300, []byte{0x30, 0x82, 0x01, 0x00}))
	f.Add((&Packet{Type: TypeGet, Key: k}).Append(nil))
	f.Add((&Packet{Type: TypeRemove, Key: k}).Append(nil))
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		ms := newMapStore()
		ms.now = func() time.Time { return now }
		s := New(ms, Options{})
		out := make([]byte, MaxDatagram)
		in := append([]byte(nil), b...)
		p, perr := Parse(in)
		n := s.Handle(in, out)
		if !bytes.Equal(in, b) {
			t.Fatal("Handle modified its input")
		}
		if perr != nil {
			if n != 0 {
				t.Fatalf("malformed (%v) but answered with %x", perr, out[:n])
			}
			if m := s.Stats().Malformed(); m != 1 {
				t.Fatalf("malformed (%v) counted %d times", perr, m)
			}
			return
		}
		if s.Stats().Malformed() != 0 {
			t.Fatal("well-formed datagram counted as malformed")
		}
		if enc := p.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded as %x, want %x", enc, b)
		}
		get := (&Packet{Type: TypeGet, Key: p.Key}).Append(nil)
		switch p.Type {
		case TypeGet:
			r, err := ParseReply(out[:n])
			if err != nil || r.Type != TypeNotFound || r.Key != p.Key || len(r.Value) != 0 {
				t.Fatalf("GET on an empty cache answered %x (%v)", out[:n], err)
			}
		case TypeNew:
			if n != 0 {
				t.Fatalf("NEW answered with %x", out[:n])
			}
			n = s.Handle(get, out)
			r, err := ParseReply(out[:n])
			if err != nil || r.Type != TypeFound || !bytes.Equal(r.Value, p.Value) {
				t.Fatalf("GET after NEW answered %x (%v), want value %x", out[:n], err, p.Value)
			}
		case TypeRemove:
			if n != 0 {
				t.Fatalf("REMOVE answered with %x", out[:n])
			}
		}
	})
}
