// SPDX-License-Identifier: Apache-2.0

package tooltest

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Target describes a running tool under the bad-input suite.
type Target struct {
	Network, Addr string
	Proc          *Proc
	// Check performs one well-behaved exchange on c (with request uid uid)
	// and fails the test if the answer is wrong.
	Check func(t testing.TB, c net.Conn, uid uint32)
}

// BadInput runs the hostile-input cases of issue 3 against a tool: each
// hostile connection must be closed (or merely wait) while the process stays
// up and a well-behaved client, running alongside the whole time, keeps
// being served correctly.
func BadInput(t *testing.T, tg Target) {
	// The well-behaved client, concurrently with every case.
	stop := make(chan struct{})
	var served atomic.Int64
	var bgErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial(tg.Network, tg.Addr)
		if err != nil {
			bgErr.Store(err.Error())
			return
		}
		defer c.Close()
		bt := &bgT{TB: t}
		for uid := uint32(1); ; uid++ {
			select {
			case <-stop:
				return
			default:
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(stopPanic); !ok {
							panic(r)
						}
					}
				}()
				tg.Check(bt, c, uid)
			}()
			if bt.msg.Load() != nil {
				bgErr.Store(bt.msg.Load())
				return
			}
			served.Add(1)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		if e := bgErr.Load(); e != nil {
			t.Errorf("well-behaved client failed during the hostile cases: %v", e)
		}
		if served.Load() == 0 {
			t.Errorf("well-behaved client was never served")
		}
	}()

	closes := []struct {
		name  string
		bytes []byte
	}{
		{"garbage", []byte("\xde\xad\xbe\xef\x99\x12\x34garbage that is not distcache at all")},
		{"http", []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		{"E1_wrong_version", append([]byte{0x00, 0x10, 0x00, 0x00}, Request(1, proto.OpGet, []byte("abc"))[4:]...)},
		{"oversized_data_len", func() []byte {
			b := proto.AppendFrameHeader(nil, false, 7, proto.OpGet, true, 0)
			binary.BigEndian.PutUint16(b[12:], 2049)
			return append(b, make([]byte, 2049)...)
		}()},
		{"response_direction", func() []byte {
			b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: 3, Op: proto.OpGet, Payload: []byte("x")})
			return b
		}()},
		{"short_incomplete_frame", func() []byte {
			b := proto.AppendFrameHeader(nil, false, 9, proto.OpGet, false, 10)
			return append(b, make([]byte, 10)...)
		}()},
		{"payload_over_32768", func() []byte {
			var b []byte
			for i := 0; i < 17; i++ {
				b = proto.AppendFrameHeader(b, false, 5, proto.OpGet, false, 2048)
				b = append(b, make([]byte, 2048)...)
			}
			return b
		}()},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			c := Dial(t, tg.Network, tg.Addr)
			c.Write(tc.bytes)
			ExpectClosed(t, c, 5*time.Second)
			tg.alive(t)
		})
	}

	t.Run("truncated_frame_then_close", func(t *testing.T) {
		req := Request(1, proto.OpGet, []byte("session-id"))
		for _, n := range []int{1, 5, 13, 14, len(req) - 1} {
			c := Dial(t, tg.Network, tg.Addr)
			c.Write(req[:n])
			c.Close()
		}
		tg.alive(t)
	})

	t.Run("split_at_every_offset", func(t *testing.T) {
		c := Dial(t, tg.Network, tg.Addr)
		rd := proto.NewReader(c, proto.WantResponses)
		id := []byte("split-session-id")
		data := make([]byte, 2100) // two frames
		for i := range data {
			data[i] = byte(i * 7)
		}
		msgs := [][]byte{
			Request(0, proto.OpGet, id),
			Request(0, proto.OpAdd, AddPayload(60000, id, data)),
		}
		uid := uint32(100)
		for _, m := range msgs {
			for k := 1; k < len(m); k++ {
				uid++
				binary.BigEndian.PutUint32(m[5:], uid)
				if len(m) > proto.HeaderSize+proto.MaxFrameData {
					binary.BigEndian.PutUint32(m[proto.HeaderSize+proto.MaxFrameData+5:], uid)
				}
				if _, err := c.Write(m[:k]); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(m[k:]); err != nil {
					t.Fatal(err)
				}
				r, err := ReadResponse(c, rd, 10*time.Second)
				if err != nil {
					t.Fatalf("split at %d: %v", k, err)
				}
				if r.UID != uid || r.Op != proto.Op(m[10]) {
					t.Fatalf("split at %d: response uid %d op %v, want %d %v", k, r.UID, r.Op, uid, proto.Op(m[10]))
				}
			}
		}
		tg.alive(t)
	})

	t.Run("1000_idle_connections", func(t *testing.T) {
		var lim syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		if lim.Cur < 2200 && lim.Max >= 2200 {
			lim.Cur = 2200
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
		conns := make([]net.Conn, 0, 1000)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < 1000; i++ {
			c, err := net.DialTimeout(tg.Network, tg.Addr, 5*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		// One of them, chosen late, still works.
		tg.Check(t, conns[500], 42)
		tg.alive(t)
	})

	t.Run("client_never_reads", func(t *testing.T) {
		c := Dial(t, tg.Network, tg.Addr)
		// Keep writing requests without reading any answer until the
		// peer stops taking them (its answers fill the socket buffers).
		big := make([]byte, 0, 200*40)
		for i := 0; i < 200; i++ {
			big = append(big, Request(uint32(i), proto.OpHave, []byte("never-read-id"))...)
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for i := 0; i < 2000; i++ {
			if _, err := c.Write(big); err != nil {
				break
			}
		}
		tg.alive(t)
	})
}

// alive checks the process is still running and serves a fresh connection.
func (tg Target) alive(t testing.TB) {
	t.Helper()
	if tg.Proc != nil && tg.Proc.Exited() {
		t.Fatalf("process exited:\n%s", tg.Proc.Out.String())
	}
	c := Dial(t, tg.Network, tg.Addr)
	tg.Check(t, c, 0xfffffff0)
}

// bgT records a failure from a background goroutine instead of calling
// FailNow off the test goroutine.
type bgT struct {
	testing.TB
	msg atomic.Value
}

func (b *bgT) Fatalf(format string, args ...any) { b.Errorf(format, args...); panicStop() }
func (b *bgT) Fatal(args ...any)                 { b.Error(args...); panicStop() }
func (b *bgT) Errorf(format string, args ...any) { b.msg.CompareAndSwap(nil, sprintf(format, args...)) }
func (b *bgT) Error(args ...any)                 { b.msg.CompareAndSwap(nil, sprint(args...)) }
func (b *bgT) Helper()                           {}
