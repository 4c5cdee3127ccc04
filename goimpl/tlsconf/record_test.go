// SPDX-License-Identifier: Apache-2.0

package tlsconf

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// chunkConn delivers its chunks one per Read, as a socket would.
type chunkConn struct {
	net.Conn
	chunks [][]byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func record(body string) []byte {
	return append([]byte{0x17, 0x03, 0x03, byte(len(body) >> 8), byte(len(body))}, body...)
}

// recordConn hands on one record per Read and tells when the next one is
// already whole.
func TestRecordConn(t *testing.T) {
	r1, r2, r3 := record("abc"), record(string(bytes.Repeat([]byte("x"), 300))), record("tail")
	in := append(append(append([]byte(nil), r1...), r2...), r3[:4]...)
	rc := &recordConn{Conn: &chunkConn{chunks: [][]byte{in[:2], in[2:], r3[4:]}}}
	p := make([]byte, 4096)
	steps := []struct {
		want  []byte
		whole bool // after the read
	}{
		{r1, true},  // r2 is all here
		{r2, false}, // r3's header is cut
		{r3, false}, // nothing left
	}
	for i, s := range steps {
		var got []byte
		for len(got) < len(s.want) {
			n, err := rc.Read(p)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			got = append(got, p[:n]...)
		}
		if !bytes.Equal(got, s.want) {
			t.Fatalf("step %d: read %d bytes, want record of %d", i, len(got), len(s.want))
		}
		if w := rc.wholeRecord(); w != s.whole {
			t.Fatalf("step %d: wholeRecord %v, want %v", i, w, s.whole)
		}
	}
	if _, err := rc.Read(p); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
	if rc.got.Load() != int64(len(in)+len(r3)-4) {
		t.Fatalf("counted %d bytes", rc.got.Load())
	}
	// A small p takes a record in pieces, never past its end.
	rc = &recordConn{Conn: &chunkConn{chunks: [][]byte{append(append([]byte(nil), r1...), r1...)}}}
	var got []byte
	for len(got) < len(r1) {
		n, _ := rc.Read(p[:2])
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, r1) || !rc.wholeRecord() {
		t.Fatalf("small reads: %q, whole %v", got, rc.wholeRecord())
	}
}
