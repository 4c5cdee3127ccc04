// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
)

// fakeStore keeps entries in a map and records what it was asked; err, when
// set, is what every call returns instead.
type fakeStore struct {
	m     map[string][]byte
	err   error
	calls int
	ttl   time.Duration // of the last Add
	big   bool          // Get returns more than a message can carry
	take  bool          // Take works (else ErrUnsupported)
}

func newFake() *fakeStore { return &fakeStore{m: make(map[string][]byte)} }

func (f *fakeStore) Add(_ context.Context, id, data []byte, ttl time.Duration) error {
	f.calls++
	f.ttl = ttl
	if f.err != nil {
		return f.err
	}
	if _, ok := f.m[string(id)]; ok {
		return store.ErrDuplicate
	}
	f.m[string(id)] = append([]byte(nil), data...)
	return nil
}

func (f *fakeStore) Get(_ context.Context, id, dst []byte) ([]byte, error) {
	f.calls++
	if f.err != nil {
		return dst, f.err
	}
	if f.big {
		return append(dst, make([]byte, proto.MaxPayload+1)...), nil
	}
	d, ok := f.m[string(id)]
	if !ok {
		return dst, store.ErrNotFound
	}
	return append(dst, d...), nil
}

func (f *fakeStore) Remove(_ context.Context, id []byte) error {
	f.calls++
	if f.err != nil {
		return f.err
	}
	if _, ok := f.m[string(id)]; !ok {
		return store.ErrNotFound
	}
	delete(f.m, string(id))
	return nil
}

func (f *fakeStore) Have(_ context.Context, id []byte) error {
	f.calls++
	if f.err != nil {
		return f.err
	}
	if _, ok := f.m[string(id)]; !ok {
		return store.ErrNotFound
	}
	return nil
}

func (f *fakeStore) Take(ctx context.Context, id, dst []byte) ([]byte, error) {
	if !f.take {
		return nil, store.ErrUnsupported
	}
	d, err := f.Get(ctx, id, dst)
	if err == nil {
		delete(f.m, string(id))
	}
	return d, err
}

func (f *fakeStore) Close() error { return nil }

var (
	exID   = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	exData = []byte("SESSDATA")
	bg     = context.Background()
)

func req(op proto.Op, payload []byte) *proto.Message {
	return &proto.Message{UID: 1, Op: op, Payload: payload}
}

func addReq(ms uint32, id, data []byte) *proto.Message {
	return req(proto.OpAdd, proto.AppendAddRequest(nil, ms, id, data))
}

func answer(t *testing.T, h *store.Handler, m *proto.Message) []byte {
	t.Helper()
	out, err := h.Handle(bg, m, nil)
	if err != nil {
		t.Fatalf("%v: %v", m.Op, err)
	}
	return out
}

// The worked exchanges of the protocol: add, duplicate add, get, have,
// remove, then the misses.
func TestHandlerExchanges(t *testing.T) {
	h := &store.Handler{Store: newFake()}
	for i, c := range []struct {
		m    *proto.Message
		want []byte
	}{
		{addReq(300000, exID, exData), []byte{0x00}},
		{addReq(300000, exID, []byte("other")), []byte{0x65}},
		{req(proto.OpGet, exID), exData},
		{req(proto.OpHave, exID), []byte{0x00}},
		{req(proto.OpRemove, exID), []byte{0x00}},
		{req(proto.OpGet, exID), []byte{0x01}},
		{req(proto.OpHave, exID), []byte{0x01}},
		{req(proto.OpRemove, exID), []byte{0x01}},
		{req(proto.OpGet, nil), []byte{0x01}}, // an empty id is legal and misses
	} {
		if out := answer(t, h, c.m); !bytes.Equal(out, c.want) {
			t.Errorf("step %d (%v): %x, want %x", i, c.m.Op, out, c.want)
		}
	}
}

func TestHandlerAddValidation(t *testing.T) {
	f := newFake()
	h := &store.Handler{Store: f}
	for i, c := range []struct {
		m    *proto.Message
		code byte
	}{
		{addReq(proto.MaxExpiry+1, exID, exData), proto.AddErrTimeoutRange},
		{addReq(1000, exID, nil), proto.AddErrCorrupt},
		{addReq(1000, nil, exData), proto.AddErrIDRange},
		{addReq(1000, make([]byte, 65), exData), proto.AddErrIDRange},
	} {
		if out := answer(t, h, c.m); len(out) != 1 || out[0] != c.code {
			t.Errorf("case %d: %x, want %02x", i, out, c.code)
		}
	}
	if f.calls != 0 {
		t.Errorf("the store was asked %d times about invalid adds", f.calls)
	}
	if out := answer(t, h, addReq(proto.MaxExpiry, make([]byte, 64), exData)); out[0] != 0 {
		t.Errorf("add at the limits: %x", out)
	}
	f.err = fmt.Errorf("too big for this store: %w", store.ErrInvalid)
	if out := answer(t, h, addReq(1000, exID, exData)); out[0] != proto.AddErrMatching {
		t.Errorf("add the store refuses: %x, want 65", out)
	}
}

// The requests the original answers by closing the connection.
func TestHandlerCloses(t *testing.T) {
	f := newFake()
	h := &store.Handler{Store: f}
	for name, m := range map[string]*proto.Message{
		"7-byte ADD": req(proto.OpAdd, make([]byte, 7)),
		"empty ADD":  req(proto.OpAdd, nil),
		"response":   {Response: true, Op: proto.OpGet, Payload: exID},
		"bad op":     {Op: 9, Payload: exID},
	} {
		out, err := h.Handle(bg, m, nil)
		if !errors.Is(err, store.ErrClose) || out != nil {
			t.Errorf("%s: %x, %v; want a close", name, out, err)
		}
	}
	f.big = true
	if _, err := h.Handle(bg, req(proto.OpGet, exID), nil); !errors.Is(err, store.ErrOversizeGet) {
		t.Errorf("oversize GET: %v", err)
	}
	if msg := store.ErrShortAdd.Error(); msg != "ADD request shorter than 8 bytes" {
		t.Errorf("reason %q", msg)
	}
}

// GET, REMOVE and HAVE of an id no store can hold miss without a store call.
func TestHandlerIDRange(t *testing.T) {
	f := newFake()
	h := &store.Handler{Store: f}
	for _, op := range []proto.Op{proto.OpGet, proto.OpRemove, proto.OpHave} {
		for _, id := range [][]byte{nil, make([]byte, 65), make([]byte, proto.MaxPayload)} {
			if out := answer(t, h, req(op, id)); !bytes.Equal(out, []byte{1}) {
				t.Errorf("%v of a %d-byte id: %x", op, len(id), out)
			}
		}
	}
	if f.calls != 0 {
		t.Errorf("the store was asked %d times", f.calls)
	}
	answer(t, h, req(proto.OpGet, make([]byte, 64)))
	if f.calls != 1 {
		t.Errorf("a 64-byte id was not looked up")
	}
}

// -minlifetime: a timeout under 1000 ms means "not given".
func TestHandlerMinLifetime(t *testing.T) {
	for i, c := range []struct {
		min  time.Duration
		ms   uint32
		want time.Duration
	}{
		{300 * time.Second, 999, 300 * time.Second},
		{300 * time.Second, 0, 300 * time.Second},
		{300 * time.Second, 1000, time.Second},
		{300 * time.Second, 86400000, 24 * time.Hour},
		{0, 999, 999 * time.Millisecond},
		{0, 0, 0},
	} {
		f := newFake()
		h := &store.Handler{Store: f, MinLifetime: c.min}
		if out := answer(t, h, addReq(c.ms, exID, exData)); out[0] != 0 {
			t.Fatalf("case %d: %x", i, out)
		}
		if f.ttl != c.want {
			t.Errorf("case %d: -minlifetime %v, timeout %d ms: stored for %v, want %v", i, c.min, c.ms, f.ttl, c.want)
		}
	}
}

func TestHandlerUnavailable(t *testing.T) {
	down := fmt.Errorf("redis: dial: %w", store.ErrUnavailable)
	ops := []*proto.Message{addReq(1000, exID, exData), req(proto.OpGet, exID), req(proto.OpRemove, exID), req(proto.OpHave, exID)}
	for name, c := range map[string]struct {
		policy store.UnavailablePolicy
		want   [4][]byte
	}{
		"default": {nil, [4][]byte{{0x65}, {1}, {1}, {1}}},
		"miss":    {store.AnswerMiss, [4][]byte{{0x65}, {1}, {1}, {1}}},
		"empty":   {store.AnswerEmpty, [4][]byte{{}, {}, {}, {}}},
		"disconn": {store.AnswerDisconnected, [4][]byte{{2}, {2}, {2}, {2}}},
	} {
		for _, err := range []error{down, errors.New("undocumented failure"), context.DeadlineExceeded} {
			f := newFake()
			f.err = err
			h := &store.Handler{Store: f, Unavailable: c.policy}
			for i, m := range ops {
				if out := answer(t, h, m); !bytes.Equal(out, c.want[i]) {
					t.Errorf("%s, %v, %v: %x, want %x", name, err, m.Op, out, c.want[i])
				}
			}
		}
	}
	// A policy sees the operation and the error.
	f := newFake()
	f.err = down
	var sawOp proto.Op
	var sawErr error
	h := &store.Handler{Store: f, Unavailable: func(op proto.Op, err error) []byte {
		sawOp, sawErr = op, err
		return []byte{7}
	}}
	if out := answer(t, h, req(proto.OpHave, exID)); !bytes.Equal(out, []byte{7}) || sawOp != proto.OpHave || sawErr != down {
		t.Errorf("custom policy: %x, saw %v %v", out, sawOp, sawErr)
	}
}

// Handle reuses the caller's buffer.
func TestHandlerReusesOut(t *testing.T) {
	f := newFake()
	h := &store.Handler{Store: f}
	answer(t, h, addReq(1000, exID, exData))
	buf := make([]byte, 5, 64)
	out, err := h.Handle(bg, req(proto.OpGet, exID), buf)
	if err != nil || !bytes.Equal(out, exData) || &out[0] != &buf[:1][0] {
		t.Fatalf("GET into a 64-byte buffer: %q %v, same buffer %v", out, err, &out[0] == &buf[:1][0])
	}
}

func TestCheck(t *testing.T) {
	if err := store.Check(exID, exData, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		store.Check(nil, exData, 0),
		store.Check(exID, nil, 0),
		store.Check(exID, exData, -1),
		store.Check(exID, exData, 7*24*time.Hour+1),
		store.Check(exID, make([]byte, 32769), 0),
	} {
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Check: %v, want ErrInvalid", err)
		}
	}
}

// TAKE is served only when announced; the probe id answers the features
// and cannot be stored.
func TestHandlerTake(t *testing.T) {
	f := newFake()
	f.take = true
	plain := &store.Handler{Store: f}
	if out, err := plain.Handle(bg, req(proto.OpTake, exID), nil); !errors.Is(err, store.ErrBadOp) {
		t.Fatalf("TAKE without features: %x %v, want a close", out, err)
	}
	if out := answer(t, plain, req(proto.OpGet, proto.FeaturesID)); !bytes.Equal(out, []byte{0x01}) {
		t.Fatalf("probe without features: %x", out)
	}
	h := &store.Handler{Store: f, Features: func() uint32 { return proto.FeatureTake }}
	if out := answer(t, h, req(proto.OpGet, proto.FeaturesID)); proto.ParseFeatures(out) != proto.FeatureTake {
		t.Fatalf("probe: %x", out)
	}
	if out := answer(t, h, addReq(300000, proto.FeaturesID, exData)); !bytes.Equal(out, []byte{proto.AddErrIDRange}) {
		t.Fatalf("ADD of the probe id: %x", out)
	}
	answer(t, h, addReq(300000, exID, exData))
	if out := answer(t, h, req(proto.OpTake, exID)); !bytes.Equal(out, exData) {
		t.Fatalf("TAKE: %x", out)
	}
	if out := answer(t, h, req(proto.OpTake, exID)); !bytes.Equal(out, []byte{0x01}) {
		t.Fatalf("second TAKE: %x", out)
	}
	if out := answer(t, h, req(proto.OpGet, exID)); !bytes.Equal(out, []byte{0x01}) {
		t.Fatalf("GET after TAKE: %x", out)
	}
}

// GETLIFE: closed for as a 1.5 server does unless announced; then the
// remaining lifetime (whole milliseconds, big-endian) and the data, 0x01
// for a miss or a store that failed, 0x03 for a session that does not
// fit with its lifetime; a store that cannot tell lifetimes says 0.
func TestHandlerGetLife(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	now := t0
	c := cache.New(cache.Config{Now: func() time.Time { return now }})
	plain := &store.Handler{Store: c.Store()}
	if out, err := plain.Handle(bg, req(proto.OpGetLife, exID), nil); !errors.Is(err, store.ErrBadOp) {
		t.Fatalf("GETLIFE without features: %x %v, want a close", out, err)
	}
	h := &store.Handler{Store: c.Store(), Features: func() uint32 { return proto.FeatureGetLife }}
	answer(t, h, addReq(300000, exID, exData))
	now = t0.Add(1500*time.Millisecond + 700*time.Microsecond)
	want := append([]byte{0, 0x04, 0x8e, 0x03}, exData...) // 298499 ms
	if out := answer(t, h, req(proto.OpGetLife, exID)); !bytes.Equal(out, want) {
		t.Fatalf("GETLIFE: % x, want % x", out, want)
	}
	if left, d, ok := proto.ParseLife(want); !ok || left != 298499*time.Millisecond || !bytes.Equal(d, exData) {
		t.Fatalf("ParseLife: %v %q %v", left, d, ok)
	}
	for name, id := range map[string][]byte{"miss": []byte("nope"), "probe id": proto.FeaturesID, "empty id": nil} {
		if out := answer(t, h, req(proto.OpGetLife, id)); !bytes.Equal(out, []byte{0x01}) {
			t.Fatalf("%s: % x", name, out)
		}
	}
	for _, n := range []int{proto.MaxLifeData, proto.MaxLifeData + 1} {
		id := []byte(fmt.Sprint("big-", n))
		if err := c.Store().Add(bg, id, bytes.Repeat([]byte{'b'}, n), time.Minute); err != nil {
			t.Fatal(err)
		}
		out := answer(t, h, req(proto.OpGetLife, id))
		if n == proto.MaxLifeData && len(out) != proto.MaxPayload || n > proto.MaxLifeData && !bytes.Equal(out, []byte{proto.ResultTooLarge}) {
			t.Fatalf("%d bytes: %d answered", n, len(out))
		}
	}
	f := newFake()
	hf := &store.Handler{Store: f, Features: func() uint32 { return proto.FeatureGetLife }}
	answer(t, hf, addReq(300000, exID, exData))
	if out := answer(t, hf, req(proto.OpGetLife, exID)); !bytes.Equal(out, append([]byte{0, 0, 0, 0}, exData...)) {
		t.Fatalf("a store without lifetimes: % x", out)
	}
	f.err = store.ErrUnavailable
	if out := answer(t, hf, req(proto.OpGetLife, exID)); !bytes.Equal(out, []byte{0x01}) {
		t.Fatalf("a failed store: % x", out)
	}
}
