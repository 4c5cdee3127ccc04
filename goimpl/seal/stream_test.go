// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A sealed stream holds no plaintext, opens with the key that sealed it,
// and any damage, cut, reordering or other key is an error.
func TestStream(t *testing.T) {
	kr := ring(t, "k1 "+hexA)
	plain := bytes.Repeat([]byte("master secret of a session; "), 6000) // 168 kB: 3 chunks
	var sealed bytes.Buffer
	w := NewWriter(&sealed, kr)
	for p := plain; len(p) > 0; p = p[min(len(p), 1000):] {
		if _, err := w.Write(p[:min(len(p), 1000)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := sealed.Bytes()
	if bytes.Contains(b, []byte("master secret")) || !IsStream(b) {
		t.Fatal("plaintext in the sealed stream, or no header")
	}
	got, err := io.ReadAll(NewReader(bytes.NewReader(b), kr))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// The chunks' offsets, to reorder and cut them.
	head := len(streamMagic) + streamTag
	var offs []int
	for o := head; o < len(b); {
		offs = append(offs, o)
		o += 4 + int(uint32(b[o])<<24|uint32(b[o+1])<<16|uint32(b[o+2])<<8|uint32(b[o+3])&^lastChunk)
	}
	if len(offs) != 3 {
		t.Fatalf("%d chunks", len(offs))
	}
	swapped := append(append(append([]byte(nil), b[:offs[0]]...), b[offs[1]:offs[2]]...), b[offs[0]:offs[1]]...)
	swapped = append(swapped, b[offs[2]:]...)
	flipped := append([]byte(nil), b...)
	flipped[offs[1]+100] ^= 1
	for name, c := range map[string]struct {
		b    []byte
		kr   *Keyring
		want error
	}{
		"other key id":      {b, ring(t, "k2 "+hexA), ErrKeyID},
		"same id other key": {b, ring(t, "k1 "+hexB), ErrAuth},
		"last chunk cut":    {b[:offs[2]], kr, ErrStream},
		"cut in a chunk":    {b[:offs[1]+10], kr, ErrStream},
		"chunks reordered":  {swapped, kr, ErrAuth},
		"byte flipped":      {flipped, kr, ErrAuth},
		"not sealed":        {plain, kr, ErrStream},
	} {
		_, err := io.ReadAll(NewReader(bytes.NewReader(c.b), c.kr))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
