// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// A copy taken while the cache is in use, then the changes recorded
// meanwhile: the reader ends with exactly the writer's entries, in the same
// eviction order.
func TestCopyWithChanges(t *testing.T) {
	now := time.Now()
	src := New(Config{Shards: 4})
	id := func(i int) []byte { return []byte(fmt.Sprintf("id-%04d", i)) }
	for i := 0; i < 500; i++ {
		src.Add(now, 60000, id(i), []byte{byte(i), 1})
	}
	var first, changes bytes.Buffer
	if _, err := src.StartCopy(&first); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		src.Remove(now, id(i))                           // removed after the copy
		src.Add(now, 60000, id(1000+i), []byte{byte(i)}) // added after it
	}
	src.Store().Take(context.Background(), id(200), nil)
	src.Add(now, 60000, id(100), []byte("duplicate, refused"))
	src.Remove(now, id(101))
	src.Add(now, 60000, id(101), []byte("replaced"))
	if _, err := src.FinishCopy(&changes); err != nil {
		t.Fatal(err)
	}
	src.Remove(now, id(300)) // after FinishCopy: not recorded
	dst := New(Config{Shards: 4})
	for _, b := range []*bytes.Buffer{&first, &changes} {
		if _, err := dst.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
	}
	if !dst.Remove(now, id(300)) {
		t.Fatal("a remove after FinishCopy was recorded")
	}
	want, got := src.Export(), dst.Export()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].ID, want[i].ID) || !bytes.Equal(got[i].Data, want[i].Data) || got[i].Expiry != want[i].Expiry {
			t.Fatalf("entry %d: %q %q %d, want %q %q %d", i, got[i].ID, got[i].Data, got[i].Expiry, want[i].ID, want[i].Data, want[i].Expiry)
		}
	}
	// Nothing is recorded any more.
	if n, _ := src.FinishCopy(io.Discard); n > int64(len(streamMagic))+6 {
		t.Fatalf("%d bytes recorded after FinishCopy", n)
	}
}
