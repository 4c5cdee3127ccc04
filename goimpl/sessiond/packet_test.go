// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// unhex decodes hex written with spaces for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	key32 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	zero  = "0000000000000000000000000000000000000000000000000000000000000000"
)

func TestParseRequests(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		typ     byte
		timeout uint16
		value   string
	}{
		{"new 300s", "01 00 012c" + key32 + "3082", TypeNew, 300, "3082"},
		{"new 18h cap", "01 00 fd20" + key32 + "aa", TypeNew, 64800, "aa"},
		{"new max timeout field", "01 00 ffff" + key32 + "aa", TypeNew, 65535, "aa"},
		{"get", "01 01 0000" + key32, TypeGet, 0, ""},
		{"get with trailing bytes", "01 01 0000" + key32 + "beef", TypeGet, 0, "beef"},
		{"remove", "01 02 0000" + key32, TypeRemove, 0, ""},
		{"new 512-byte value", "01 00 0001" + zero + strings.Repeat("ab", 512), TypeNew, 1, strings.Repeat("ab", 512)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unhex(t, tt.in)
			p, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.Type != tt.typ || p.Timeout != tt.timeout {
				t.Errorf("got type %#x timeout %d, want %#x %d", p.Type, p.Timeout, tt.typ, tt.timeout)
			}
			if !bytes.Equal(p.Key[:], in[4:36]) {
				t.Errorf("got key %x, want %x", p.Key, in[4:36])
			}
			if got := hex.EncodeToString(p.Value); got != tt.value {
				t.Errorf("got value %s, want %s", got, tt.value)
			}
			if out := p.Append(nil); !bytes.Equal(out, in) {
				t.Errorf("Append gives %x, want %x", out, in)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"one byte", []byte{1}, ErrShort},
		{"header minus one", unhex(t, "01 01 0000"+key32)[:35], ErrShort},
		{"version 0", unhex(t, "00 01 0000"+key32), ErrVersion},
		{"version 2", unhex(t, "02 01 0000"+key32), ErrVersion},
		{"version ff", unhex(t, "ff 00 0000"+key32+"aa"), ErrVersion},
		{"type 3", unhex(t, "01 03 0000"+key32), ErrType},
		{"type 7f", unhex(t, "01 7f 0000"+key32), ErrType},
		{"reply not found as request", unhex(t, "01 80 0000"+key32), ErrType},
		{"reply found as request", unhex(t, "01 81 0000"+key32+"aa"), ErrType},
		{"type ff", unhex(t, "01 ff 0000"+key32), ErrType},
		{"513-byte value", unhex(t, "01 00 0001"+key32+strings.Repeat("ab", 513)), ErrOversize},
		{"64 KiB datagram", make([]byte, 65507), ErrOversize},
		{"new without value", unhex(t, "01 00 012c"+key32), ErrNoValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	found := unhex(t, "01 81 0000"+key32+"308201")
	p, err := ParseReply(found)
	if err != nil || p.Type != TypeFound || hex.EncodeToString(p.Value) != "308201" {
		t.Fatalf("found: got %+v, %v", p, err)
	}
	if _, err := ParseReply(unhex(t, "01 80 0000"+key32)); err != nil {
		t.Fatalf("not found: %v", err)
	}
	for _, bad := range [][]byte{
		unhex(t, "01 01 0000"+key32),        // a request
		unhex(t, "02 81 0000"+key32),        // wrong version
		unhex(t, "01 81 0000"+key32)[:30],   // short
		append(found, make([]byte, 512)...), // too long for stunnel's buffer
	} {
		if _, err := ParseReply(bad); err == nil {
			t.Errorf("ParseReply(%x) accepted", bad)
		}
	}
}

func TestKeyFromID(t *testing.T) {
	k, ok := KeyFromID([]byte{1, 2, 3})
	if !ok || k[0] != 1 || k[2] != 3 || k[3] != 0 || k[31] != 0 {
		t.Errorf("short id: got %x %v", k, ok)
	}
	id := unhex(t, key32)
	if k, ok := KeyFromID(id); !ok || !bytes.Equal(k[:], id) {
		t.Errorf("32-byte id: got %x %v", k, ok)
	}
	if _, ok := KeyFromID(make([]byte, 33)); ok {
		t.Error("33-byte id accepted")
	}
}
