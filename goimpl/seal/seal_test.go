// SPDX-License-Identifier: Apache-2.0

package seal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/store/storetest"
)

const (
	hexA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	hexB = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
)

func ring(t testing.TB, text string) *Keyring {
	t.Helper()
	kr, err := ParseKeys(strings.NewReader(text))
	if err != nil {
		t.Fatalf("ParseKeys(%q): %v", text, err)
	}
	return kr
}

func writeKeys(t testing.TB, dir, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "keys")
	if err := os.WriteFile(p+".tmp", []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p+".tmp", mode); err != nil { // not masked by umask
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantIDs []string // sealing key first
		wantErr string
	}{
		{"one key", "k1 " + hexA + "\n", []string{"k1"}, ""},
		{"comments and blanks", "# rotation 2026\n\n  new " + hexB + "  # current\nold " + hexA, []string{"new", "old"}, ""},
		{"upper-case hex", "K.1_x-y " + strings.ToUpper(hexA), []string{"K.1_x-y"}, ""},
		{"no keys", "# nothing\n\n", nil, "no keys"},
		{"empty", "", nil, "no keys"},
		{"short key", "k1 " + hexA[:62], nil, "line 1: key \"k1\" has 62 hex digits, want 64"},
		{"long key", "k1 " + hexA + "00", nil, "has 66 hex digits"},
		{"not hex", "k1 " + strings.Replace(hexA, "0", "g", 1), nil, "line 1: key \"k1\" is not hexadecimal"},
		{"one field", "\n" + hexA, nil, "line 2: want \"<id> <64 hex digits>\", got 1 fields"},
		{"three fields", "k1 " + hexA + " extra", nil, "got 3 fields"},
		{"bad id", "k/1 " + hexA, nil, "line 1: key id \"k/1\" may hold only letters"},
		{"long id", strings.Repeat("k", 17) + " " + hexA, nil, "must be 1 to 16 characters"},
		{"duplicate id", "k1 " + hexA + "\nk1 " + hexB, nil, "key id \"k1\" listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := ParseKeys(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), hexA[:16]) || strings.Contains(err.Error(), hexB[:16]) {
					t.Fatalf("error %q shows key material", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := kr.KeyIDs()
			if ids[0] != tc.wantIDs[0] || len(ids) != len(tc.wantIDs) || kr.SealingKeyID() != tc.wantIDs[0] {
				t.Fatalf("got ids %v, want %v", ids, tc.wantIDs)
			}
		})
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o620, false}, {0o602, false}, {0o644, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			p := writeKeys(t, t.TempDir(), "k1 "+hexA+"\n", tc.mode)
			kr, err := LoadKeyFile(p)
			if tc.ok {
				if err != nil || kr.SealingKeyID() != "k1" {
					t.Fatalf("got %v, %v; want the key", kr, err)
				}
				return
			}
			want := fmt.Sprintf("key file %s has mode %04o: group or others may read or write it; refusing it (chmod 600 %s)", p, tc.mode, p)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		d := t.TempDir()
		os.Chmod(d, 0o700)
		if _, err := LoadKeyFile(d); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v, want a refusal of a directory", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
	})
	t.Run("bad line names file and line", func(t *testing.T) {
		p := writeKeys(t, t.TempDir(), "k1 "+hexA+"\nk2 zz\n", 0o600)
		_, err := LoadKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), p+": line 2:") {
			t.Fatalf("got %v, want it to name %s line 2", err, p)
		}
	})
}

var ctx = context.Background()

type ctxT = context.Context

func TestRoundTripAndStoredBytes(t *testing.T) {
	mem := newMem()
	s := New(mem, ring(t, "k1 "+hexA), Options{})
	for _, n := range []int{1, 100, 2000, 32768} {
		id := []byte(fmt.Sprintf("session-%d", n))
		data := bytes.Repeat([]byte("MASTERSECRET-"), n/13+1)[:n]
		if err := s.Add(ctx, id, data, time.Minute); err != nil {
			t.Fatalf("Add %d bytes: %v", n, err)
		}
		raw := mem.raw(string(id))
		if got, want := len(raw), n+Overhead(2); got != want {
			t.Fatalf("stored %d bytes for %d of data, want %d", got, n, want)
		}
		if n >= 8 && bytes.Contains(raw, data[:8]) {
			t.Fatalf("stored bytes contain the plaintext")
		}
		if raw[0] != Version || raw[1] != 2 || string(raw[2:4]) != "k1" {
			t.Fatalf("header % x, want version, 2, \"k1\"", raw[:4])
		}
		got, err := s.Get(ctx, id, []byte("prefix"))
		if err != nil || string(got) != "prefix"+string(data) {
			t.Fatalf("Get: %v, data equal %v", err, string(got) == "prefix"+string(data))
		}
		if err := s.Have(ctx, id); err != nil {
			t.Fatalf("Have: %v", err)
		}
	}
	if err := s.Add(ctx, []byte("session-1"), []byte("other"), time.Minute); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second Add: %v, want ErrDuplicate", err)
	}
	if s.Failures() != 0 {
		t.Fatalf("Failures = %d, want 0", s.Failures())
	}
}

// The wrapped store's size limit applies to the sealed entry, and its
// refusal says how long the entry became.
func TestTooLongOnceSealed(t *testing.T) {
	s := New(limitStore{newMem(), 1000}, ring(t, "k1 "+hexA), Options{})
	if err := s.Add(ctx, []byte("fits"), make([]byte, 1000-Overhead(2)), time.Minute); err != nil {
		t.Fatalf("largest entry that fits: %v", err)
	}
	err := s.Add(ctx, []byte("id"), make([]byte, 1000-Overhead(2)+1), time.Minute)
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "(957 bytes of data, 1001 once sealed)") {
		t.Fatalf("got %v, want ErrInvalid naming both sizes", err)
	}
	if err := s.Add(ctx, []byte("id"), make([]byte, 32769), time.Minute); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("32769 bytes: %v, want ErrInvalid", err)
	}
}

type limitStore struct {
	*memStore
	max int
}

func (l limitStore) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	if len(data) > l.max {
		return store.ErrInvalid
	}
	return l.memStore.Add(ctx, id, data, ttl)
}

// The wrapper keeps every rule of store.Store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return New(newMem(), ring(t, "k1 "+hexA), Options{}) })
}

func TestNoncesDiffer(t *testing.T) {
	kr := ring(t, "k1 "+hexA)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		b := kr.Seal(nil, []byte("id"), []byte("same data"))
		e, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(e.Nonce)] {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[string(e.Nonce)] = true
	}
}

// Every single-byte change of a stored entry, anywhere in it, is a miss.
func TestFlippedByteIsAMiss(t *testing.T) {
	mem := newMem()
	s := New(mem, ring(t, "k1 "+hexA), Options{})
	id := []byte("flip")
	if err := s.Add(ctx, id, []byte("the session master secret"), time.Minute); err != nil {
		t.Fatal(err)
	}
	orig := append([]byte(nil), mem.raw("flip")...)
	for i := range orig {
		bad := append([]byte(nil), orig...)
		bad[i] ^= 0x01
		mem.put("flip", bad)
		if got, err := s.Get(ctx, id, nil); !errors.Is(err, store.ErrNotFound) || len(got) != 0 {
			t.Fatalf("byte %d flipped: Get = %q, %v; want a miss", i, got, err)
		}
		if err := s.Have(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("byte %d flipped: Have = %v, want a miss", i, err)
		}
	}
	if got, want := s.Failures(), uint64(2*len(orig)); got != want {
		t.Fatalf("Failures = %d, want %d", got, want)
	}
	mem.put("flip", orig)
	if got, err := s.Get(ctx, id, nil); err != nil || string(got) != "the session master secret" {
		t.Fatalf("restored entry: %q, %v", got, err)
	}
	// Truncated and extended entries.
	for _, b := range [][]byte{orig[:len(orig)-1], append(append([]byte(nil), orig...), 0), orig[:10], {}} {
		mem.put("flip", b)
		if _, err := s.Get(ctx, id, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("entry of %d bytes: %v, want a miss", len(b), err)
		}
	}
}

func TestEntryMovedToAnotherIDIsAMiss(t *testing.T) {
	mem := newMem()
	s := New(mem, ring(t, "k1 "+hexA), Options{})
	if err := s.Add(ctx, []byte("victim"), []byte("secret"), time.Minute); err != nil {
		t.Fatal(err)
	}
	mem.put("attacker", mem.raw("victim"))
	_, err := s.Get(ctx, []byte("attacker"), nil)
	if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrAuth) {
		t.Fatalf("moved entry: %v, want ErrNotFound wrapping ErrAuth", err)
	}
	if _, err := s.Take(ctx, []byte("attacker"), nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Take of moved entry: %v, want a miss", err)
	}
	if got, err := s.Take(ctx, []byte("victim"), nil); err != nil || string(got) != "secret" {
		t.Fatalf("Take original: %q, %v", got, err)
	}
	if _, err := s.Get(ctx, []byte("victim"), nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Take: %v, want ErrNotFound", err)
	}
}

func TestPlaintextEntryIsAMiss(t *testing.T) {
	mem := newMem()
	s := New(mem, ring(t, "k1 "+hexA), Options{})
	mem.put("planted", []byte("a session planted by whoever reached the server, long enough to look sealed......"))
	if _, err := s.Get(ctx, []byte("planted"), nil); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrVersion) {
		t.Fatalf("planted plaintext: %v, want ErrNotFound wrapping ErrVersion", err)
	}
}

func TestWrongKeyReadsNothing(t *testing.T) {
	mem := newMem()
	a := New(mem, ring(t, "k1 "+hexA), Options{})
	sameID := New(mem, ring(t, "k1 "+hexB), Options{})
	otherID := New(mem, ring(t, "k2 "+hexA), Options{})
	for i := 0; i < 20; i++ {
		if err := a.Add(ctx, []byte(fmt.Sprint("s", i)), []byte("secret"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		id := []byte(fmt.Sprint("s", i))
		if _, err := sameID.Get(ctx, id, nil); !errors.Is(err, ErrAuth) {
			t.Fatalf("other secret, same key id: %v, want ErrAuth", err)
		}
		if _, err := otherID.Get(ctx, id, nil); !errors.Is(err, ErrKeyID) || !strings.Contains(err.Error(), `"k1"`) {
			t.Fatalf("other key id: %v, want ErrKeyID naming k1", err)
		}
	}
	if sameID.Failures() != 20 || otherID.Failures() != 20 {
		t.Fatalf("Failures = %d, %d, want 20, 20", sameID.Failures(), otherID.Failures())
	}
}

func TestRotationByReload(t *testing.T) {
	dir := t.TempDir()
	p := writeKeys(t, dir, "old "+hexA+"\n", 0o600)
	mem := newMem()
	s, err := Open(mem, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, []byte("e1"), []byte("sealed by old"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// New key first, old still listed: old entries open, new ones use new.
	writeKeys(t, dir, "new "+hexB+"\nold "+hexA+"\n", 0o600)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, []byte("e1"), nil); err != nil || string(got) != "sealed by old" {
		t.Fatalf("old entry after rotation: %q, %v", got, err)
	}
	if err := s.Add(ctx, []byte("e2"), []byte("sealed by new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if raw := mem.raw("e2"); string(raw[2:5]) != "new" {
		t.Fatalf("e2 sealed with key %q, want new", raw[2:2+raw[1]])
	}
	// A broken file is refused and the keys in use stay.
	writeKeys(t, dir, "new zz\n", 0o600)
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of a broken file succeeded")
	}
	writeKeys(t, dir, "new "+hexB+"\n", 0o644)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Reload of a readable file: %v, want a refusal", err)
	}
	if got, err := s.Get(ctx, []byte("e1"), nil); err != nil || string(got) != "sealed by old" {
		t.Fatalf("old entry after failed reloads: %q, %v", got, err)
	}
	// Old key retired: its entries no longer open; new ones still do.
	writeKeys(t, dir, "new "+hexB+"\n", 0o600)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, []byte("e1"), nil); !errors.Is(err, ErrKeyID) {
		t.Fatalf("entry of a retired key: %v, want ErrKeyID", err)
	}
	if got, err := s.Get(ctx, []byte("e2"), nil); err != nil || string(got) != "sealed by new" {
		t.Fatalf("new entry: %q, %v", got, err)
	}
}

func TestReloadWithoutFile(t *testing.T) {
	s := New(newMem(), ring(t, "k1 "+hexA), Options{})
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of an in-memory ring succeeded")
	}
}

func TestFailuresLoggedRateLimited(t *testing.T) {
	mem := newMem()
	var mu sync.Mutex
	var lines []string
	logf := func(f string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	s := New(mem, ring(t, "k1 "+hexA), Options{Logf: logf, LogEvery: time.Hour})
	mem.put("bad", []byte("junk"))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				s.Get(ctx, []byte("bad"), nil)
			}
		}()
	}
	wg.Wait()
	if len(lines) != 1 || s.Failures() != 100 {
		t.Fatalf("got %d lines, %d failures; want 1 line, 100 failures", len(lines), s.Failures())
	}
	want := "Warning, sealed session 626164 did not open, answered as a miss: seal: unknown sealed-entry version 0x6a; 1 failures in all"
	if lines[0] != want {
		t.Fatalf("got %q\nwant %q", lines[0], want)
	}
	// Once the interval has passed, the next failure is reported with the
	// count of those suppressed.
	s.logMu.Lock()
	s.lastLog = time.Now().Add(-2 * time.Hour)
	s.logMu.Unlock()
	s.Get(ctx, []byte("bad"), nil)
	if len(lines) != 2 || !strings.HasSuffix(lines[1], "(and 99 more since the last report); 101 failures in all") {
		t.Fatalf("second line %q", lines[len(lines)-1])
	}
}

func TestMissesAndErrorsPassThrough(t *testing.T) {
	mem := newMem()
	s := New(mem, ring(t, "k1 "+hexA), Options{})
	if _, err := s.Get(ctx, []byte("none"), nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of nothing: %v", err)
	}
	if err := s.Remove(ctx, []byte("none")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Remove of nothing: %v", err)
	}
	if err := s.Add(ctx, []byte("x"), []byte("y"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, []byte("x")); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if s.Failures() != 0 {
		t.Fatalf("plain misses counted as failures: %d", s.Failures())
	}
}

// GetLife opens the entry and passes the wrapped store's remaining
// lifetime on; an entry that does not open is a miss with no lifetime.
func TestGetLife(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	now := t0
	c := cache.New(cache.Config{Now: func() time.Time { return now }})
	s := New(c.Store(), ring(t, "k1 "+hexA), Options{})
	if err := s.Add(ctx, []byte("x"), []byte("secret"), time.Minute); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(10 * time.Second)
	d, left, err := s.GetLife(ctx, []byte("x"), []byte("pre-"))
	if err != nil || string(d) != "pre-secret" || left != 50*time.Second {
		t.Fatalf("GetLife: %q %v %v", d, left, err)
	}
	if err := c.Store().Add(ctx, []byte("plain"), []byte("not sealed"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if d, left, err := s.GetLife(ctx, []byte("plain"), nil); !errors.Is(err, store.ErrNotFound) || left != 0 || len(d) != 0 {
		t.Fatalf("an entry that does not open: %q %v %v", d, left, err)
	}
}
