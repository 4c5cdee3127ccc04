// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestStreamRoundTrip(t *testing.T) {
	now := time.Now()
	src := New(Config{})
	for i := 0; i < 1000; i++ {
		src.Add(now, uint32(60000+i), []byte(fmt.Sprintf("id-%04d", i)), bytes.Repeat([]byte{byte(i)}, 1+i%300))
	}
	src.Add(now, 1000, []byte("short"), []byte("lived"))
	var buf bytes.Buffer
	n, err := src.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d %v (buffer %d)", n, err, buf.Len())
	}
	dst := New(Config{})
	if m, err := dst.ReadFrom(bytes.NewReader(buf.Bytes())); err != nil || m != n {
		t.Fatalf("ReadFrom: %d %v", m, err)
	}
	if got := dst.NumItems(now); got != 1001 {
		t.Fatalf("%d entries, want 1001", got)
	}
	out := make([]byte, 400)
	for i := 0; i < 1000; i += 97 {
		k := dst.Get(now, []byte(fmt.Sprintf("id-%04d", i)), out)
		if k != 1+i%300 || !bytes.Equal(out[:k], bytes.Repeat([]byte{byte(i)}, k)) {
			t.Fatalf("entry %d: %d bytes", i, k)
		}
	}
	// Absolute expiries travel: the short one is gone 1.001 s later, the
	// others are not.
	later := now.Add(1001 * time.Millisecond)
	if dst.Get(later, []byte("short"), out) != 0 || dst.Get(later, []byte("id-0000"), out) == 0 {
		t.Fatal("expiry not carried")
	}
}

// Any damage is refused as a whole: nothing imported.
func TestStreamDamage(t *testing.T) {
	now := time.Now()
	src := New(Config{})
	for i := 0; i < 50; i++ {
		src.Add(now, 60000, []byte(fmt.Sprintf("id-%02d", i)), []byte("data"))
	}
	var buf bytes.Buffer
	src.WriteTo(&buf)
	good := buf.Bytes()
	cases := map[string][]byte{
		"empty":     nil,
		"foreign":   []byte("SQLite format 3\x00"),
		"truncated": good[:len(good)-3],
		"extended":  append(append([]byte(nil), good...), 0),
	}
	for i := len(streamMagic); i < len(good); i += 7 {
		b := append([]byte(nil), good...)
		b[i] ^= 0x20
		cases[fmt.Sprintf("byte %d flipped", i)] = b
	}
	for name, b := range cases {
		dst := New(Config{})
		_, err := dst.ReadFrom(bytes.NewReader(b))
		if name == "extended" {
			// A byte after the checksum is not read as part of the
			// stream; the stream itself is intact.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, ErrStream) {
			t.Errorf("%s: %v, want ErrStream", name, err)
		}
		if dst.NumItems(now) != 0 {
			t.Errorf("%s: %d entries imported from a damaged stream", name, dst.NumItems(now))
		}
	}
}

func BenchmarkStream(b *testing.B) {
	for _, n := range []int{100000, 1000000} {
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			now := time.Now()
			src := New(Config{})
			data := bytes.Repeat([]byte{1}, 200)
			for i := 0; i < n; i++ {
				src.Add(now, 600000, []byte(fmt.Sprintf("session-id-%024d", i)), data)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var buf bytes.Buffer
				src.WriteTo(&buf)
				dst := New(Config{})
				if _, err := dst.ReadFrom(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "sessions")
		})
	}
}
