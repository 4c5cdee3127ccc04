// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"bytes"
	"errors"
	"testing"
)

var fuzzRing = func() *Keyring {
	var a, b Key
	a.ID, b.ID = "k1", "old"
	for i := range a.Secret {
		a.Secret[i], b.Secret[i] = byte(i), byte(255-i)
	}
	kr, err := NewKeyring(a, b)
	if err != nil {
		panic(err)
	}
	return kr
}()

// FuzzDecode feeds arbitrary bytes to the sealed-entry decoder and to Open:
// neither may panic, a decoded entry's parts must be the input's, and no
// input that was not sealed by the ring may open.
func FuzzDecode(f *testing.F) {
	// A fixed nonce, so that every fuzzing worker has the same valid entry.
	valid := fuzzRing.sealNonce(nil, []byte("sid"), []byte("data"), make([]byte, nonceSize))
	f.Add(valid, []byte("sid"))                                   // opens
	f.Add(valid, []byte("other"))                                 // moved
	f.Add(valid[:len(valid)-1], []byte("sid"))                    // truncated
	f.Add([]byte{}, []byte("sid"))                                // empty
	f.Add([]byte{Version}, []byte("sid"))                         // header cut
	f.Add([]byte{0x02, 2, 'k', '1'}, []byte("sid"))               // future version
	f.Add(append([]byte{Version, 0}, valid[2:]...), []byte("s"))  // zero-length id
	f.Add(append([]byte{Version, 17}, valid[2:]...), []byte("s")) // id too long
	f.Add(append([]byte{Version, 2, 'k', '/'}, valid[4:]...), []byte("sid"))
	f.Fuzz(func(t *testing.T, b, id []byte) {
		e, err := Decode(b)
		if err == nil {
			if e.Version != Version || len(e.KeyID) == 0 || len(e.KeyID) > MaxKeyIDLen ||
				len(e.Nonce) != nonceSize || len(e.Sealed) <= tagSize {
				t.Fatalf("decoded %+v from % x", e, b)
			}
			joined := append(append(append([]byte(nil), e.Header...), e.Nonce...), e.Sealed...)
			if !bytes.Equal(joined, b) || !bytes.Equal(e.Header[2:], e.KeyID) {
				t.Fatalf("parts do not make up the input")
			}
		}
		out, oerr := fuzzRing.Open([]byte("dst"), id, b)
		if oerr == nil {
			if !bytes.Equal(b, valid) || string(id) != "sid" || string(out) != "dstdata" {
				t.Fatalf("opened % x for id %q to %q", b, id, out)
			}
			return
		}
		if string(out) != "dst" {
			t.Fatalf("failed Open changed dst to %q", out)
		}
		if !errors.Is(oerr, ErrFormat) && !errors.Is(oerr, ErrVersion) && !errors.Is(oerr, ErrKeyID) && !errors.Is(oerr, ErrAuth) {
			t.Fatalf("Open error %v is none of the documented ones", oerr)
		}
	})
}

// FuzzSealOpen seals arbitrary data for an arbitrary id, applies an
// arbitrary change, and checks that the entry opens exactly when nothing
// changed (flip is XORed into the entry from byte at).
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("sid"), []byte("data"), []byte{}, uint16(0))
	f.Add([]byte("sid"), []byte("data"), []byte{1}, uint16(0))
	f.Add([]byte("sid"), []byte("data"), []byte{0x80, 0, 3}, uint16(40))
	f.Add(bytes.Repeat([]byte{7}, 64), bytes.Repeat([]byte{9}, 3000), []byte{0, 0, 1}, uint16(1000))
	f.Fuzz(func(t *testing.T, id, data, flip []byte, at uint16) {
		if len(data) == 0 {
			return
		}
		b := fuzzRing.Seal(nil, id, data)
		if len(b) != len(data)+Overhead(2) {
			t.Fatalf("sealed %d bytes into %d", len(data), len(b))
		}
		changed := false
		for i, x := range flip {
			if j := int(at) + i; j < len(b) && x != 0 {
				b[j] ^= x
				changed = true
			}
		}
		out, err := fuzzRing.Open(nil, id, b)
		if changed {
			if err == nil {
				t.Fatalf("altered entry opened")
			}
			return
		}
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
