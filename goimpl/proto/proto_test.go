// SPDX-License-Identifier: Apache-2.0

package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	exID   = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	exData = []byte("SESSDATA")
)

// The worked examples of doc/PROTOCOL.md §7, captured from the original binaries.
var workedExamples = []struct {
	name string
	msg  Message
	wire string
}{
	{"12.1 ADD request", Message{UID: 1, Op: OpAdd, Payload: AppendAddRequest(nil, 300000, exID, exData)},
		"00110000 00 00000001 00 00 01 0018 000493e0 00000008 0102030405060708 5345535344415441"},
	{"12.2 ADD response", Message{Response: true, UID: 1, Op: OpAdd, Payload: []byte{ResultOK}},
		"00110000 01 00000001 00 00 01 0001 00"},
	{"12.2 ADD duplicate", Message{Response: true, UID: 1, Op: OpAdd, Payload: []byte{AddErrMatching}},
		"00110000 01 00000001 00 00 01 0001 65"},
	{"12.3 GET request", Message{UID: 2, Op: OpGet, Payload: exID},
		"00110000 00 00000002 00 01 01 0008 0102030405060708"},
	{"12.4 GET hit", Message{Response: true, UID: 2, Op: OpGet, Payload: exData},
		"00110000 01 00000002 00 01 01 0008 5345535344415441"},
	{"12.5 GET miss", Message{Response: true, UID: 2, Op: OpGet, Payload: []byte{ResultNotOK}},
		"00110000 01 00000002 00 01 01 0001 01"},
	{"12.5 HAVE hit", Message{Response: true, UID: 3, Op: OpHave, Payload: []byte{ResultOK}},
		"00110000 01 00000003 00 03 01 0001 00"},
	{"12.5 REMOVE ok", Message{Response: true, UID: 4, Op: OpRemove, Payload: []byte{ResultOK}},
		"00110000 01 00000004 00 02 01 0001 00"},
	{"12.5 dc_client no upstream", Message{Response: true, UID: 0x55, Op: OpGet},
		"00110000 01 00000055 00 01 01 0000"},
	{"12.5 dc_client upstream died", Message{Response: true, UID: 0x77, Op: OpGet, Payload: []byte{ResultDisconnected}},
		"00110000 01 00000077 00 01 01 0001 02"},
}

func TestWorkedExamples(t *testing.T) {
	for _, ex := range workedExamples {
		t.Run(ex.name, func(t *testing.T) {
			want := unhex(t, ex.wire)
			got, err := AppendMessage(nil, &ex.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			var a Assembler
			m, n, err := a.Decode(want)
			if err != nil || m == nil || n != len(want) {
				t.Fatalf("decode: m=%v n=%d err=%v", m, n, err)
			}
			if m.Response != ex.msg.Response || m.UID != ex.msg.UID || m.Op != ex.msg.Op || !bytes.Equal(m.Payload, ex.msg.Payload) {
				t.Fatalf("decode mismatch: %+v", m)
			}
		})
	}
}

func TestMultiFrameHeaders(t *testing.T) {
	// doc/PROTOCOL.md §7: a 5000-byte GET response, uid 10.
	payload := bytes.Repeat([]byte{0xab}, 5000)
	b, err := AppendMessage(nil, &Message{Response: true, UID: 10, Op: OpGet, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	heads := []string{
		"00110000 01 0000000a 00 01 00 0800",
		"00110000 01 0000000a 00 01 00 0800",
		"00110000 01 0000000a 00 01 01 0388",
	}
	off := 0
	for i, h := range heads {
		if got := b[off : off+HeaderSize]; !bytes.Equal(got, unhex(t, h)) {
			t.Fatalf("frame %d header %x, want %s", i+1, got, h)
		}
		off += HeaderSize + int(b[off+12])<<8 + int(b[off+13])
	}
	if off != len(b) || len(b) != EncodedSize(5000) {
		t.Fatalf("length %d, walked %d, EncodedSize %d", len(b), off, EncodedSize(5000))
	}
}

func TestFragmentationBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, 2047, 2048, 2049, 4096, 32767, 32768} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		b, err := AppendMessage(nil, &Message{UID: uint32(n), Op: OpAdd, Payload: payload})
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		wantFrames := (n + 2047) / 2048
		if wantFrames == 0 {
			wantFrames = 1
		}
		// Walk the frames and check the complete/data_len rule.
		frames, off := 0, 0
		for off < len(b) {
			f, k, err := ParseFrame(b[off:])
			if err != nil {
				t.Fatalf("%d: frame %d: %v", n, frames, err)
			}
			frames++
			off += k
			last := off == len(b)
			if f.Complete != last {
				t.Fatalf("%d: frame %d complete=%v last=%v", n, frames, f.Complete, last)
			}
			if !last && len(f.Data) != MaxFrameData {
				t.Fatalf("%d: middle frame with %d bytes", n, len(f.Data))
			}
		}
		if frames != wantFrames || frames > MaxFrames {
			t.Fatalf("%d bytes: %d frames, want %d", n, frames, wantFrames)
		}
		var a Assembler
		m, used, err := a.Decode(b)
		if err != nil || m == nil || used != len(b) || !bytes.Equal(m.Payload, payload) || m.UID != uint32(n) {
			t.Fatalf("%d: reassembly failed: used=%d err=%v", n, used, err)
		}
	}
	if _, err := AppendMessage(nil, &Message{Op: OpAdd, Payload: make([]byte, 32769)}); err != ErrPayloadTooLarge {
		t.Fatalf("32769 bytes: err %v", err)
	}
	if _, err := AppendMessage(nil, &Message{Op: OpGetLife + 1}); err != ErrBadOp {
		t.Fatalf("op 8: err %v", err)
	}
	b, err := AppendMessage(nil, &Message{Op: OpTake, UID: 9, Payload: []byte("id")})
	if err != nil {
		t.Fatalf("TAKE: %v", err)
	}
	if f, _, err := ParseFrame(b); err != nil || f.Op != OpTake || f.Op.Valid() {
		t.Fatalf("TAKE frame: %+v %v", f, err)
	}
}

// A 17th, empty, completing frame after 16 full ones is tolerated by the
// reader (cumulative payload is still 32768); one more byte is corrupt.
func TestSeventeenthFrame(t *testing.T) {
	full, _ := AppendMessage(nil, &Message{Op: OpGet, Payload: make([]byte, 32768)})
	// Turn the 16th frame into a non-final one, then add an empty final frame.
	b := append([]byte(nil), full...)
	b[15*(HeaderSize+MaxFrameData)+11] = 0
	b = AppendFrameHeader(b, false, 0, OpGet, true, 0)
	var a Assembler
	m, _, err := a.Decode(b)
	if err != nil || m == nil || len(m.Payload) != 32768 {
		t.Fatalf("17 frames / 32768 bytes: m=%v err=%v", m != nil, err)
	}
	b = b[:len(b)-HeaderSize]
	b = AppendFrameHeader(b, false, 0, OpGet, true, 1)
	b = append(b, 0)
	a.Reset()
	if _, _, err := a.Decode(b); !IsCorrupt(err) {
		t.Fatalf("32769 bytes: err %v", err)
	}
}

func TestCorruptFrames(t *testing.T) {
	good := unhex(t, "00110000 00 00000002 00 01 01 0008 0102030405060708")
	mod := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	cases := map[string][]byte{
		"version 0x0010":     {0x00, 0x10, 0x00, 0x00, 0x00},
		"version 0x0012":     mod(1, 0x12),
		"is_response 2":      mod(4, 2),
		"op_class 1":         mod(9, 1),
		"operation 8":        mod(10, 8),
		"complete 2":         mod(11, 2),
		"data_len 2049":      append(unhex(t, "00110000 00 00000002 00 01 01 0801"), make([]byte, 2049)...),
		"short non-complete": mod(11, 0),
		"HTTP request":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"four bad bytes":     {0xde, 0xad, 0xbe, 0xef},
	}
	for name, b := range cases {
		_, _, err := ParseFrame(b)
		if !IsCorrupt(err) {
			t.Errorf("%s: err = %v, want corrupt", name, err)
		}
	}
	// Any patch level of version 0x0011 is accepted.
	b := mod(2, 0xff)
	b[3] = 0xff
	if _, _, err := ParseFrame(b); err != nil {
		t.Fatalf("patch level 0xffff: %v", err)
	}
	var ce *CorruptError
	if _, _, err := ParseFrame([]byte{0, 0x10, 0, 0, 0}); !errors.As(err, &ce) || ce.Level != 0x00100000 {
		t.Fatalf("version error does not carry the level: %v", err)
	}
}

func TestAssemblerRules(t *testing.T) {
	req := func(uid uint32, op Op, complete bool, n int) []byte {
		b := AppendFrameHeader(nil, false, uid, op, complete, n)
		return append(b, make([]byte, n)...)
	}
	// Continuation with another uid or op is corrupt.
	for name, second := range map[string][]byte{
		"uid": req(8, OpGet, true, 1),
		"op":  req(7, OpHave, true, 1),
	} {
		var a Assembler
		b := append(req(7, OpGet, false, 2048), second...)
		if _, _, err := a.Decode(b); !IsCorrupt(err) {
			t.Errorf("continuation %s mismatch: err %v", name, err)
		}
	}
	// Direction checks.
	resp := AppendFrameHeader(nil, true, 1, OpGet, true, 0)
	a := Assembler{Want: WantRequests}
	if _, _, err := a.Decode(resp); !IsCorrupt(err) {
		t.Errorf("response accepted by a request assembler: %v", err)
	}
	a = Assembler{Want: WantResponses}
	if _, _, err := a.Decode(req(1, OpGet, true, 0)); !IsCorrupt(err) {
		t.Errorf("request accepted by a response assembler: %v", err)
	}
	// Two pipelined messages decode one at a time.
	two := append(req(1, OpGet, true, 3), req(2, OpHave, true, 4)...)
	a = Assembler{}
	m, n, err := a.Decode(two)
	if err != nil || m == nil || m.UID != 1 || n != HeaderSize+3 {
		t.Fatalf("first of two: %v %d %v", m, n, err)
	}
	m, k, err := a.Decode(two[n:])
	if err != nil || m == nil || m.UID != 2 || m.Op != OpHave || n+k != len(two) {
		t.Fatalf("second of two: %v %d %v", m, k, err)
	}
}

// oneByteReader returns at most one byte per Read.
type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func multiFrameStream(t testing.TB) ([]byte, []byte) {
	payload := make([]byte, 5000)
	for i := range payload {
		payload[i] = byte(i)
	}
	b, err := AppendMessage(nil, &Message{Response: true, UID: 99, Op: OpGet, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b, payload
}

func TestReaderOneByteAtATime(t *testing.T) {
	b, payload := multiFrameStream(t)
	b2, _ := AppendMessage(nil, &Message{Response: true, UID: 100, Op: OpHave, Payload: []byte{0}})
	r := NewReader(&oneByteReader{b: append(append([]byte(nil), b...), b2...)}, WantResponses)
	m, err := r.ReadMessage()
	if err != nil || m.UID != 99 || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("first: %v", err)
	}
	m, err = r.ReadMessage()
	if err != nil || m.UID != 100 || m.Op != OpHave {
		t.Fatalf("second: %v", err)
	}
	if _, err = r.ReadMessage(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// splitReader delivers its data in two reads split at a given offset.
type splitReader struct {
	parts [][]byte
}

func (r *splitReader) Read(p []byte) (int, error) {
	for len(r.parts) > 0 && len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	return n, nil
}

func TestReaderSplitAtEveryOffset(t *testing.T) {
	b, payload := multiFrameStream(t)
	for i := 0; i <= len(b); i++ {
		r := NewReader(&splitReader{parts: [][]byte{b[:i], b[i:]}}, WantResponses)
		m, err := r.ReadMessage()
		if err != nil || !bytes.Equal(m.Payload, payload) {
			t.Fatalf("split at %d: %v", i, err)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("split at %d: expected exactly one message, then EOF; got %v", i, err)
		}
	}
}

// The assembler must never act on a frame missing its last bytes (EDGES E-2).
func TestNoEarlyDecode(t *testing.T) {
	b, _ := AppendMessage(nil, &Message{UID: 2, Op: OpGet, Payload: exID})
	for cut := 1; cut <= len(b); cut++ {
		var a Assembler
		m, n, err := a.Decode(b[:len(b)-cut])
		if m != nil || n != 0 || err != nil {
			t.Fatalf("frame minus %d bytes: m=%v n=%d err=%v", cut, m, n, err)
		}
	}
}

func TestReaderEOFCases(t *testing.T) {
	b, _ := multiFrameStream(t)
	for _, cut := range []int{1, HeaderSize, HeaderSize + MaxFrameData, len(b) - 1} {
		r := NewReader(bytes.NewReader(b[:cut]), WantAny)
		if _, err := r.ReadMessage(); err != io.ErrUnexpectedEOF {
			t.Errorf("truncated at %d: %v", cut, err)
		}
	}
	r := NewReader(bytes.NewReader([]byte("GET / HTTP/1.0\r\n\r\n")), WantRequests)
	if _, err := r.ReadMessage(); !IsCorrupt(err) {
		t.Errorf("HTTP request: %v", err)
	}
}

func TestAddRequestValidation(t *testing.T) {
	id := exID
	cases := []struct {
		name    string
		payload []byte
		code    byte
		ok      bool
	}{
		{"short", []byte{0, 0, 0, 1, 0, 0, 0}, 0, false},
		{"valid", AppendAddRequest(nil, 300000, id, exData), ResultOK, true},
		{"timeout 0", AppendAddRequest(nil, 0, id, exData), ResultOK, true},
		{"timeout max", AppendAddRequest(nil, MaxExpiry, id, exData), ResultOK, true},
		{"timeout over", AppendAddRequest(nil, MaxExpiry+1, id, exData), AddErrTimeoutRange, true},
		{"no data", AppendAddRequest(nil, 1000, id, nil), AddErrCorrupt, true},
		{"id_len huge", append([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, 1, 2, 3), AddErrCorrupt, true},
		{"id_len 0", AppendAddRequest(nil, 1000, nil, exData), AddErrIDRange, true},
		{"id_len 65", AppendAddRequest(nil, 1000, make([]byte, 65), exData), AddErrIDRange, true},
		{"id_len 64", AppendAddRequest(nil, 1000, make([]byte, 64), exData), ResultOK, true},
	}
	for _, c := range cases {
		req, code, ok := ParseAddRequest(c.payload)
		if ok != c.ok || (ok && code != c.code) {
			t.Errorf("%s: code %#x ok %v, want %#x %v", c.name, code, ok, c.code, c.ok)
		}
		if ok && code == ResultOK && (!bytes.Equal(req.ID, c.payload[8:8+len(req.ID)]) || len(req.ID)+len(req.Data)+8 != len(c.payload)) {
			t.Errorf("%s: fields not split correctly", c.name)
		}
	}
}

func TestResultNamesAndCmd(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range []byte{ResultOK, ResultNotOK, ResultDisconnected, AddErrCorrupt, AddErrMatching, AddErrTimeoutRange, AddErrIDRange, AddErrDataRange} {
		n := ResultName(b)
		if seen[n] || strings.HasPrefix(n, "0x") {
			t.Errorf("result %#x has name %q", b, n)
		}
		seen[n] = true
	}
	for cmd := 0; cmd <= 5; cmd++ {
		op, ok := OpFromCmd(cmd)
		if ok != (cmd >= 1 && cmd <= 4) || (ok && op.Cmd() != cmd) {
			t.Errorf("cmd %d -> %v %v", cmd, op, ok)
		}
	}
}

func TestFeatures(t *testing.T) {
	b := AppendFeatures(nil, FeatureTake)
	if len(b) != 8 || ParseFeatures(b) != FeatureTake {
		t.Fatalf("round trip: % x -> %d", b, ParseFeatures(b))
	}
	for _, p := range [][]byte{nil, {ResultNotOK}, append([]byte("DCX2"), b[4:]...), append(b, 0)} {
		if ParseFeatures(p) != 0 {
			t.Fatalf("% x read as a feature answer", p)
		}
	}
	if !IsFeaturesID(FeaturesID) || IsFeaturesID(FeaturesID[1:]) || len(FeaturesID) > MaxIDLen {
		t.Fatal("FeaturesID")
	}
}

// A Reader stopped anywhere in a stream (a connection handed to another
// process) and a new one given its Pending bytes and the rest of the
// stream decode every message exactly once between them.
func TestReaderPendingAtEveryOffset(t *testing.T) {
	b, payload := multiFrameStream(t)
	b, _ = AppendMessage(b, &Message{Response: true, UID: 100, Op: OpHave, Payload: []byte{0}})
	for i := 0; i <= len(b); i++ {
		var got []*Message
		keep := func(m *Message) {
			cp := *m
			cp.Payload = append([]byte(nil), m.Payload...)
			got = append(got, &cp)
		}
		r := NewReader(bytes.NewReader(b[:i]), WantResponses)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				break
			}
			keep(m)
		}
		r2 := NewReader(bytes.NewReader(append(r.Pending(), b[i:]...)), WantResponses)
		for {
			m, err := r2.ReadMessage()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stopped at %d: the new reader: %v", i, err)
			}
			keep(m)
		}
		if len(got) != 2 || got[0].UID != 99 || !bytes.Equal(got[0].Payload, payload) || got[1].UID != 100 || got[1].Op != OpHave {
			t.Fatalf("stopped at %d: %d messages", i, len(got))
		}
	}
}

// A message of one frame is not copied: its payload is the frame's data
// where it was read. A message of several frames is reassembled.
func TestSingleFramePayloadInPlace(t *testing.T) {
	for _, n := range []int{1, 200, MaxFrameData - 1, MaxFrameData + 1} {
		b, _ := AppendMessage(nil, &Message{UID: 7, Op: OpAdd, Payload: bytes.Repeat([]byte{'p'}, n)})
		var a Assembler
		m, used, err := a.Decode(b)
		if err != nil || m == nil || used != len(b) || len(m.Payload) != n {
			t.Fatalf("%d bytes: %v, %v, used %d of %d", n, m, err, used, len(b))
		}
		inPlace := &m.Payload[0] == &b[HeaderSize]
		if inPlace != (n <= MaxFrameData) {
			t.Errorf("%d bytes: payload in place %v", n, inPlace)
		}
	}
}

// GETLIFE's lifetime: whole milliseconds, rounded down, 0..MaxExpiry;
// anything of LifeSize bytes or fewer is not a hit.
func TestLife(t *testing.T) {
	b := make([]byte, LifeSize)
	for _, c := range []struct {
		in, out time.Duration
	}{
		{-time.Second, 0},
		{1999 * time.Microsecond, time.Millisecond},
		{8 * 24 * time.Hour, MaxExpiry * time.Millisecond},
	} {
		PutLife(b, c.in)
		if left, d, ok := ParseLife(append(b, 'd')); !ok || left != c.out || string(d) != "d" {
			t.Fatalf("%v: %v %q %v, want %v", c.in, left, d, ok, c.out)
		}
	}
	for n := 0; n <= LifeSize; n++ {
		if _, _, ok := ParseLife(make([]byte, n)); ok {
			t.Fatalf("%d bytes taken for a hit", n)
		}
	}
	if left, _, _ := ParseLife([]byte{0xff, 0xff, 0xff, 0xff, 'd'}); left != MaxExpiry*time.Millisecond {
		t.Fatalf("a lifetime over 7 days: %v", left)
	}
}
