// SPDX-License-Identifier: Apache-2.0

package dcctx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/distcache-go/distcache/goimpl/client/internal/fake"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

var flagSets = []struct {
	name  string
	flags uint32
}{
	{"flags=0", 0},
	{"flags=P", FlagPersistent},
	{"flags=P|PID", FlagPersistent | FlagPIDCheck},
	{"flags=P|RETRY", FlagPersistent | FlagRetry},
	{"flags=P|LATE", FlagPersistent | FlagLate},
	{"flags=P|PID|RETRY|LATE", FlagPersistent | FlagPIDCheck | FlagRetry | FlagLate},
	{"flags=RETRY|LATE", FlagRetry | FlagLate}, // no PERSISTENT: per-op connections
}

var networks = []string{"unix", "tcp"}

// generous bounds for tests that expect success on a loaded machine
var testOptions = &Options{ConnectTimeout: 20 * time.Second, IOTimeout: 20 * time.Second, Logf: stallLog.printf}

// stallLog keeps the probation lines of the contexts made with
// testOptions, for a failure's message.
var stallLog lines

type lines struct {
	mu sync.Mutex
	l  []string
}

func (ls *lines) printf(format string, args ...any) {
	ls.mu.Lock()
	ls.l = append(ls.l, fmt.Sprintf(format, args...))
	ls.mu.Unlock()
}

// about returns the lines that name addr.
func (ls *lines) about(addr string) []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []string
	for _, l := range ls.l {
		if strings.Contains(l, addr) {
			out = append(out, l)
		}
	}
	return out
}

// newCtx is New with testOptions when opt is nil.
func newCtx(t testing.TB, target string, flags uint32, opt *Options) *Ctx {
	t.Helper()
	if opt == nil {
		opt = testOptions
	}
	c, err := New(target, flags, opt)
	if err != nil {
		t.Fatalf("New(%q, %#x): %v", target, flags, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestRoundTripEveryOpAndFlag(t *testing.T) {
	for _, nw := range networks {
		for _, fs := range flagSets {
			t.Run(nw+"/"+fs.name, func(t *testing.T) {
				s := fake.Start(t, nw, "", nil)
				c := newCtx(t, s.Target, fs.flags, nil)
				id := []byte("session-id-0001")
				data := bytes.Repeat([]byte("SESSDATA"), 40)
				buf := make([]byte, 1024)

				if got := c.HasSession(id); got != 0 {
					t.Fatalf("has before add = %d, want 0", got)
				}
				if _, ok := c.GetSession(id, buf); ok {
					t.Fatal("get before add succeeded")
				}
				if !c.AddSession(id, data, 300000) {
					t.Fatal("add failed")
				}
				if got := s.LastTimeout.Load(); got != 300000 {
					t.Fatalf("server saw timeout %d, want 300000", got)
				}
				if c.AddSession(id, []byte("other-data"), 300000) {
					t.Fatal("duplicate add succeeded (server answered 0x65)")
				}
				if got := c.HasSession(id); got != 1 {
					t.Fatalf("has after add = %d, want 1", got)
				}
				used, ok := c.GetSession(id, buf)
				if !ok || used != len(data) || !bytes.Equal(buf[:used], data) {
					t.Fatalf("get = %d, %v, want %d bytes of data", used, ok, len(data))
				}
				buf2 := make([]byte, 1024)
				used, ok = c.RegetSession(id, buf2)
				if !ok || used != len(data) || !bytes.Equal(buf2[:used], data) {
					t.Fatalf("reget = %d, %v", used, ok)
				}
				if !c.RemoveSession(id) {
					t.Fatal("remove failed")
				}
				if c.RemoveSession(id) {
					t.Fatal("second remove succeeded")
				}
				if got := c.HasSession(id); got != 0 {
					t.Fatalf("has after remove = %d, want 0", got)
				}
				// Large session: 16 frames each way.
				big := bytes.Repeat([]byte{0xa5}, proto.MaxPayload-8-len(id))
				if !c.AddSession(id, big, 300000) {
					t.Fatal("add of the largest session failed")
				}
				bigBuf := make([]byte, len(big))
				if used, ok := c.GetSession(id, bigBuf); !ok || used != len(big) || !bytes.Equal(bigBuf, big) {
					t.Fatalf("get of largest session = %d, %v", used, ok)
				}
				// Persistent or not, one connection carries every
				// operation (a non-persistent Ctx keeps its idle one).
				if got := s.Accepts.Load(); got != 1 {
					t.Fatalf("server accepted %d connections for %d requests, want 1", got, s.Requests.Load())
				}
			})
		}
	}
}

func TestNewRejectsBadTarget(t *testing.T) {
	for _, s := range []string{"IP:9001", "IP::9001", "FD:0", "bogus", "UNIX:"} {
		flags := uint32(0)
		if s == "UNIX:" {
			flags = FlagPersistent // parses, but nothing can be connected
		}
		if c, err := New(s, flags, nil); err == nil {
			c.Close()
			t.Errorf("New(%q, %#x) succeeded", s, flags)
		}
	}
}

func TestServerDown(t *testing.T) {
	dir := fake.ShortTempDir(t)
	target := "UNIX:" + filepath.Join(dir, "missing")
	if c, err := New(target, FlagPersistent, nil); err == nil {
		c.Close()
		t.Fatal("New(PERSISTENT) to a missing unix socket succeeded")
	}
	if c, err := New(target, FlagPersistent|FlagRetry, nil); err == nil {
		c.Close()
		t.Fatal("New(PERSISTENT|RETRY) to a missing unix socket succeeded")
	}
	for _, flags := range []uint32{0, FlagPersistent | FlagLate, FlagPersistent | FlagLate | FlagRetry} {
		c := newCtx(t, target, flags, nil)
		if c.AddSession([]byte("id"), []byte("data"), 300000) {
			t.Fatalf("flags %#x: add succeeded with no server", flags)
		}
		if _, ok := c.GetSession([]byte("id"), nil); ok {
			t.Fatalf("flags %#x: get succeeded with no server", flags)
		}
		if c.RemoveSession([]byte("id")) {
			t.Fatalf("flags %#x: remove succeeded with no server", flags)
		}
		if got := c.HasSession([]byte("id")); got != -1 {
			t.Fatalf("flags %#x: has = %d with no server, want -1", flags, got)
		}
	}
	// TCP: a closed loopback port refuses at once.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpTarget := "IP:" + ln.Addr().String()
	ln.Close()
	if c, err := New(tcpTarget, FlagPersistent, nil); err == nil {
		c.Close()
		t.Fatal("New(PERSISTENT) to a closed TCP port succeeded")
	}
	c := newCtx(t, tcpTarget, 0, nil)
	if got := c.HasSession([]byte("id")); got != -1 {
		t.Fatalf("has = %d with no TCP server, want -1", got)
	}
	// The server comes up later: a LATE context starts working.
	late := newCtx(t, target, FlagPersistent|FlagLate, nil)
	if late.HasSession([]byte("x")) != -1 {
		t.Fatal("has succeeded before the server exists")
	}
	fake.Start(t, "unix", strings.TrimPrefix(target, "UNIX:"), nil)
	if got := late.HasSession([]byte("x")); got != 0 {
		t.Fatalf("has after the server started = %d, want 0", got)
	}
}

func TestServerRestart(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			store := fake.NewStore()
			s := fake.Start(t, nw, "", store)
			retry := newCtx(t, s.Target, FlagPersistent|FlagRetry, nil)
			plain := newCtx(t, s.Target, FlagPersistent, nil)
			late := newCtx(t, s.Target, FlagPersistent|FlagRetry|FlagLate|FlagPIDCheck, nil)
			id, data := []byte("restart-id"), []byte("restart-data")
			if !retry.AddSession(id, data, 300000) || plain.HasSession(id) != 1 || late.HasSession(id) != 1 {
				t.Fatal("first operations failed")
			}
			where := s.Where()
			s.Stop()
			s = fake.Start(t, nw, where, store)

			// RETRY: the dead pooled connection is replaced within the call.
			if got := retry.HasSession(id); got != 1 {
				t.Fatalf("PERSISTENT|RETRY after restart: has = %d, want 1", got)
			}
			if got := late.HasSession(id); got != 1 {
				t.Fatalf("all flags after restart: has = %d, want 1", got)
			}
			// PERSISTENT alone: this call fails (the original's contract)...
			if got := plain.HasSession(id); got != -1 {
				t.Fatalf("PERSISTENT after restart: has = %d, want -1", got)
			}
			// ...and the next one reconnects (EDGES E-35 improvement).
			if got := plain.HasSession(id); got != 1 {
				t.Fatalf("PERSISTENT on the call after: has = %d, want 1", got)
			}
			if got := s.Accepts.Load(); got != 3 {
				t.Fatalf("restarted server accepted %d connections, want 3", got)
			}
		})
	}
}

func TestRetryDialFailsThenRecovers(t *testing.T) {
	// E-10: PERSISTENT|RETRY without LATE, server gone: the op fails, the
	// next one fails too (no crash), and a returning server is used.
	store := fake.NewStore()
	s := fake.Start(t, "unix", "", store)
	c := newCtx(t, s.Target, FlagPersistent|FlagRetry, nil)
	if c.HasSession([]byte("a")) != 0 {
		t.Fatal("has failed")
	}
	where := s.Where()
	s.Stop()
	for i := 0; i < 3; i++ {
		if got := c.HasSession([]byte("a")); got != -1 {
			t.Fatalf("has with server gone = %d, want -1", got)
		}
	}
	fake.Start(t, "unix", where, store)
	if got := c.HasSession([]byte("a")); got != 0 {
		t.Fatalf("has after the server returned = %d, want 0", got)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	for _, nw := range networks {
		for _, flags := range []uint32{0, FlagPersistent, FlagPersistent | FlagRetry} {
			t.Run(fmt.Sprintf("%s/flags=%#x", nw, flags), func(t *testing.T) {
				s := fake.Start(t, nw, "", nil)
				s.SetMode(fake.ModeSilent)
				c := newCtx(t, s.Target, flags, &Options{IOTimeout: 100 * time.Millisecond, Timeout: 20 * time.Millisecond})
				if got := c.HasSession([]byte("id")); got != -1 {
					t.Fatalf("has = %d from a silent server, want -1", got)
				}
				// A timeout is not retried, and puts the Ctx on
				// probation: the next operation sends nothing.
				if !c.Stalled() {
					t.Fatal("not on probation after a timeout")
				}
				if c.AddSession([]byte("id"), []byte("data"), 300000) {
					t.Fatal("add succeeded against a silent server")
				}
				if err := c.Do(t.Context(), proto.OpHave, []byte("id"), nil, 0, func([]byte) {}); !errors.Is(err, ErrStalled) {
					t.Fatalf("operation on probation: %v, want ErrStalled", err)
				}
				s.SetMode(fake.ModeNormal)
				// the probe that waits on the silent connection is never
				// answered: the next one, on a new connection, is
				fake.WaitFor(t, "the probation to end", func() bool { return !c.Stalled() })
				if got := c.HasSession([]byte("id")); got != 0 {
					t.Fatalf("has after the server woke = %d, want 0", got)
				}
			})
		}
	}
}

// deadlineOnly reports a deadline but never ends: the moment after a
// context's deadline has passed and before its timer has ended it, held
// open.
type deadlineOnly struct {
	context.Context
	d time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }

// An exchange that times out at the caller's deadline leaves the Ctx off
// probation, also when the context's own timer has not ended it yet: the
// exchange's timer at the same deadline can fire first (under load the
// Ctx then went on probation for the caller's 50 ms deadline, and the next
// operation failed with ErrStalled: goimpl/client's TestClientErrors).
func TestCallerDeadlineIsNoStall(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent, &Options{IOTimeout: 20 * time.Second, ConnectTimeout: 20 * time.Second})
	if c.HasSession([]byte("x")) != 0 {
		t.Fatal("has before the silence")
	}
	s.SetMode(fake.ModeSilent)
	ctx := deadlineOnly{context.Background(), time.Now().Add(50 * time.Millisecond)}
	if err := c.Do(ctx, proto.OpHave, []byte("x"), nil, 0, func([]byte) {}); err == nil {
		t.Fatal("an operation on a silent server succeeded")
	}
	if c.Stalled() {
		t.Fatal("on probation after the caller's deadline passed")
	}
}

func TestIOTimeoutFromEnvironment(t *testing.T) {
	t.Setenv(EnvIOTimeout, "100")
	t.Setenv(EnvConnectTimeout, "250")
	t.Setenv(EnvDefaultLifetime, "60")
	t.Setenv(EnvTimeout, "30")
	o := (*Options)(nil).resolved()
	if o.IOTimeout != 100*time.Millisecond || o.ConnectTimeout != 250*time.Millisecond || o.DefaultLifetime != time.Minute || o.Timeout != 30*time.Millisecond {
		t.Fatalf("resolved %+v", o)
	}
	o = (&Options{IOTimeout: time.Second}).resolved()
	if o.IOTimeout != time.Second {
		t.Fatalf("explicit IOTimeout replaced by the environment: %v", o.IOTimeout)
	}
	t.Setenv(EnvIOTimeout, "junk")
	t.Setenv(EnvConnectTimeout, "0")
	t.Setenv(EnvDefaultLifetime, "-5")
	t.Setenv(EnvTimeout, "x")
	o = (*Options)(nil).resolved()
	if o.IOTimeout != 0 || o.ConnectTimeout != 0 || o.DefaultLifetime != DefaultDefaultLifetime || o.Timeout != DefaultTimeout {
		t.Fatalf("invalid environment values not ignored: %+v", o)
	}
	// And the environment really bounds an operation.
	t.Setenv(EnvIOTimeout, "100")
	s := fake.Start(t, "unix", "", nil)
	s.SetMode(fake.ModeSilent)
	c, err := New(s.Target, FlagPersistent, nil) // timeouts from the environment
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.HasSession([]byte("x")); got != -1 {
		t.Fatalf("has = %d, want -1", got)
	}
}

// E-9: answers the original wedged on, then a normal answer on the same ctx.
func TestRejectedResponsesDoNotWedge(t *testing.T) {
	tests := []struct {
		mode        fake.Mode
		has         int
		wantAccepts int32 // connections after the failing op and one good op
	}{
		{fake.ModeEmpty, -1, 1},    // in step: the connection is kept
		{fake.ModeDisconn, -1, 1},  // 0x02: a well-formed answer
		{fake.ModeWrongUID, -1, 2}, // out of step: dropped and redialled
		{fake.ModeWrongOp, -1, 2},
		{fake.ModeBadLevel, -1, 2},
		{fake.ModeExtra, -1, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("mode=", tt.mode), func(t *testing.T) {
			s := fake.Start(t, "unix", "", nil)
			c := newCtx(t, s.Target, FlagPersistent, nil)
			s.SetMode(tt.mode)
			if got := c.HasSession([]byte("id")); got != tt.has {
				t.Fatalf("has = %d, want %d", got, tt.has)
			}
			if c.AddSession([]byte("id"), []byte("data"), 300000) {
				t.Fatal("add succeeded")
			}
			if _, ok := c.GetSession([]byte("id"), nil); ok {
				t.Fatal("get succeeded")
			}
			if c.RemoveSession([]byte("id")) {
				t.Fatal("remove succeeded")
			}
			s.SetMode(fake.ModeNormal)
			if !c.AddSession([]byte("id"), []byte("data"), 300000) {
				t.Fatal("add after the server recovered failed")
			}
			if got := c.HasSession([]byte("id")); got != 1 {
				t.Fatalf("has after recovery = %d, want 1", got)
			}
			want := tt.wantAccepts
			if want == 2 {
				want = 5 // each of the 4 rejected ops dropped its connection
			}
			if got := s.Accepts.Load(); got != want {
				t.Fatalf("server accepted %d connections, want %d", got, want)
			}
		})
	}
}

func TestWrongUIDFailsEveryFlag(t *testing.T) {
	for _, fs := range flagSets {
		s := fake.Start(t, "unix", "", nil)
		s.SetMode(fake.ModeWrongUID)
		c := newCtx(t, s.Target, fs.flags, nil)
		if got := c.HasSession([]byte("id")); got != -1 {
			t.Fatalf("%s: has with a wrong uid = %d, want -1", fs.name, got)
		}
		if got := s.Requests.Load(); got != 1 {
			t.Fatalf("%s: a rejected answer was retried (%d requests)", fs.name, got)
		}
	}
}

func TestShortTimeouts(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent, nil)
	tests := []struct {
		in   uint64
		want uint32
		ok   bool
	}{
		{500, 300000, true},
		{0, 300000, true},
		{1, 300000, true},
		{999, 300000, true},
		{1000, 1000, true},
		{86400000, 86400000, true},
		{proto.MaxExpiry, proto.MaxExpiry, true},
		{proto.MaxExpiry + 1, proto.MaxExpiry + 1, false}, // server: 0x66
		{1<<32 + 5000, 5000, true},                        // truncated to 32 bits, as the original
		{1<<64 - 1, 1<<32 - 1, false},                     // a negative C long: 0x66
	}
	for i, tt := range tests {
		id := []byte(fmt.Sprint("short-", i))
		if got := c.AddSession(id, []byte("data"), tt.in); got != tt.ok {
			t.Errorf("add with timeout %d = %v, want %v", tt.in, got, tt.ok)
		}
		if got := s.LastTimeout.Load(); got != tt.want {
			t.Errorf("timeout %d went out as %d, want %d", tt.in, got, tt.want)
		}
	}
	env := newCtx(t, s.Target, 0, &Options{IOTimeout: 20 * time.Second, DefaultLifetime: 60 * time.Second})
	if !env.AddSession([]byte("short-env"), []byte("data"), 500) || s.LastTimeout.Load() != 60000 {
		t.Fatalf("DefaultLifetime 60s: server saw %d", s.LastTimeout.Load())
	}
}

func TestInvalidArgumentsNoIO(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, 0, nil)
	id := []byte("id")
	tooBig := make([]byte, proto.MaxPayload-8-len(id)+1)
	if c.AddSession(nil, []byte("d"), 300000) || c.AddSession(id, nil, 300000) || c.AddSession(id, tooBig, 300000) {
		t.Fatal("add with invalid arguments succeeded")
	}
	if c.RemoveSession(nil) || c.HasSession(nil) != -1 {
		t.Fatal("remove/has with an empty id succeeded")
	}
	if _, ok := c.GetSession(nil, nil); ok {
		t.Fatal("get with an empty id succeeded")
	}
	if _, ok := c.GetSession(make([]byte, proto.MaxPayload+1), nil); ok {
		t.Fatal("get with an over-long id succeeded")
	}
	if got := s.Requests.Load(); got != 0 {
		t.Fatalf("invalid arguments caused %d requests", got)
	}
	// The largest legal add goes out.
	if !c.AddSession(id, tooBig[1:], 300000) {
		t.Fatal("largest add failed")
	}
	var nilCtx *Ctx
	if nilCtx.AddSession(id, id, 1000) || nilCtx.HasSession(id) != -1 {
		t.Fatal("nil Ctx did not fail")
	}
	nilCtx.Close()
}

func TestGetSmallBuffer(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, FlagPersistent, nil)
	id := []byte("small-buf")
	data := []byte("0123456789abcdef")
	if !c.AddSession(id, data, 300000) {
		t.Fatal("add failed")
	}
	dst := make([]byte, 4)
	used, ok := c.GetSession(id, dst)
	if !ok || used != len(data) || string(dst) != "0123" {
		t.Fatalf("get into 4 bytes = %d, %v, %q; want %d, true, \"0123\"", used, ok, dst, len(data))
	}
	if used, ok := c.GetSession(id, nil); !ok || used != len(data) {
		t.Fatalf("get with nil dst = %d, %v", used, ok)
	}
	big := make([]byte, 64)
	if used, ok := c.RegetSession(id, big); !ok || used != len(data) || !bytes.Equal(big[:used], data) {
		t.Fatalf("reget with a larger buffer = %d, %v", used, ok)
	}
	// E-15: sessions of 1..4 bytes are stored but never returned.
	for n := 1; n <= 5; n++ {
		sid := []byte(fmt.Sprint("tiny-", n))
		if !c.AddSession(sid, bytes.Repeat([]byte{'x'}, n), 300000) {
			t.Fatalf("add of %d bytes failed", n)
		}
		_, ok := c.GetSession(sid, big)
		if ok != (n >= 5) {
			t.Errorf("get of a %d-byte session ok = %v", n, ok)
		}
	}
}

func TestReget(t *testing.T) {
	store := fake.NewStore()
	s := fake.Start(t, "unix", "", store)
	c := newCtx(t, s.Target, 0, nil)
	a, b := []byte("reget-a"), []byte("reget-b")
	dataA := []byte("data-of-a")
	buf := make([]byte, 64)
	if _, ok := c.RegetSession(a, buf); ok {
		t.Fatal("reget before any get succeeded")
	}
	if !c.AddSession(a, dataA, 300000) {
		t.Fatal("add failed")
	}
	if _, ok := c.RegetSession(a, buf); ok {
		t.Fatal("reget after an add succeeded")
	}
	if _, ok := c.GetSession(a, buf); !ok {
		t.Fatal("get failed")
	}
	if used, ok := c.RegetSession(a, buf); !ok || !bytes.Equal(buf[:used], dataA) {
		t.Fatal("reget of the last get failed")
	}
	if _, ok := c.RegetSession(b, buf); ok {
		t.Fatal("reget of another id succeeded")
	}
	// E-14: a failed GET of another id clears the state.
	if _, ok := c.GetSession(b, buf); ok {
		t.Fatal("get of a missing id succeeded")
	}
	if used, ok := c.RegetSession(a, buf); ok {
		t.Fatalf("reget after a failed get returned %d bytes", used)
	}
	// A has clears it too.
	c.GetSession(a, buf)
	c.HasSession(a)
	if _, ok := c.RegetSession(a, buf); ok {
		t.Fatal("reget after has succeeded")
	}
	// E-18: ids over 64 bytes are fetched but not remembered (a server
	// that stores them: the original refuses them with 0x67).
	long := bytes.Repeat([]byte{'L'}, 65)
	if c.AddSession(long, dataA, 300000) {
		t.Fatal("add of a 65-byte id succeeded (server answers 0x67)")
	}
	store.Put(long, dataA)
	if used, ok := c.GetSession(long, buf); !ok || !bytes.Equal(buf[:used], dataA) {
		t.Fatal("get of a 65-byte id failed")
	}
	if _, ok := c.RegetSession(long, buf); ok {
		t.Fatal("reget of a 65-byte id succeeded")
	}
}

// A TCP connect that is never answered (the listener's accept queue is
// full, so the kernel drops SYNs) fails after ConnectTimeout, not after the
// kernel's minutes.
func TestConnectTimeout(t *testing.T) {
	target := blackHole(t)
	if c, err := New(target, FlagPersistent, &Options{ConnectTimeout: 100 * time.Millisecond}); err == nil {
		c.Close()
		t.Fatal("New connected to a black hole")
	}
	c := newCtx(t, target, 0, &Options{ConnectTimeout: 100 * time.Millisecond})
	if got := c.HasSession([]byte("x")); got != -1 {
		t.Fatalf("has = %d through a black hole, want -1", got)
	}
}

// A non-persistent Ctx keeps its connection between operations, and a kept
// connection the server has closed costs no operation: found closed before
// the write (ModeCloseIdle: the peer's EOF is usually there by the next
// operation) or dying unanswered after it (ModeOneShot: the close comes
// only when the request arrives), the request goes out again once on a new
// connection. An answer that had begun is not sent again (ModeHalfAnswer).
func TestNonPersistentKeepsConnection(t *testing.T) {
	const n = 40
	for _, nw := range []string{"unix", "tcp"} {
		for _, tc := range []struct {
			mode    fake.Mode
			accepts int32 // want, for n operations
		}{
			{fake.ModeNormal, 1},
			{fake.ModeCloseIdle, -1}, // 1..n: depends on when the EOF arrives
			{fake.ModeOneShot, n},
		} {
			t.Run(fmt.Sprintf("%s/mode=%d", nw, tc.mode), func(t *testing.T) {
				s := fake.Start(t, nw, "", nil)
				s.SetMode(tc.mode)
				c := newCtx(t, s.Target, 0, nil)
				fails := 0
				for i := 0; i < n; i++ {
					if c.HasSession([]byte(fmt.Sprintf("id-%d", i))) != 0 {
						fails++
					}
				}
				if fails != 0 {
					t.Fatalf("%d of %d operations failed", fails, n)
				}
				got := s.Accepts.Load()
				if tc.accepts > 0 && got != tc.accepts || got < 1 || got > n {
					t.Fatalf("server accepted %d connections for %d operations, want %d", got, n, tc.accepts)
				}
				if tc.mode == fake.ModeOneShot && s.Requests.Load() != 2*n-1 {
					t.Fatalf("server saw %d requests, want %d (one resend per kept connection)", s.Requests.Load(), 2*n-1)
				}
			})
		}
		t.Run(nw+"/half-answer", func(t *testing.T) {
			s := fake.Start(t, nw, "", nil)
			s.SetMode(fake.ModeHalfAnswer)
			c := newCtx(t, s.Target, 0, nil)
			if got := c.HasSession([]byte("a")); got != 0 {
				t.Fatalf("first has = %d, want 0", got)
			}
			if got := c.HasSession([]byte("b")); got != -1 {
				t.Fatalf("has with a truncated answer = %d, want -1", got)
			}
			if got := s.Requests.Load(); got != 2 {
				t.Fatalf("server saw %d requests, want 2 (a begun answer is not retried)", got)
			}
			if got := c.HasSession([]byte("c")); got != 0 {
				t.Fatalf("has after the failure = %d, want 0", got)
			}
		})
	}
}

// A non-persistent Ctx's kept connection is listed for the fork handler.
func TestNonPersistentIdleFDs(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, 0, nil)
	if fds := c.IdleFDs(); len(fds) != 0 {
		t.Fatalf("idle fds before any operation: %v", fds)
	}
	c.HasSession([]byte("x"))
	if fds := c.IdleFDs(); len(fds) != 1 || fds[0] < 0 {
		t.Fatalf("idle fds after one operation: %v, want one", fds)
	}
}

// Options.ConnPerOp keeps the original's connection per operation.
func TestConnPerOp(t *testing.T) {
	s := fake.Start(t, "unix", "", nil)
	c := newCtx(t, s.Target, 0, &Options{ConnPerOp: true})
	for i := 0; i < 5; i++ {
		if got := c.HasSession([]byte("x")); got != 0 {
			t.Fatalf("has = %d, want 0", got)
		}
	}
	if got := s.Accepts.Load(); got != 5 {
		t.Fatalf("server accepted %d connections for 5 operations, want 5", got)
	}
	if fds := c.IdleFDs(); len(fds) != 0 {
		t.Fatalf("idle fds with ConnPerOp: %v", fds)
	}
}
