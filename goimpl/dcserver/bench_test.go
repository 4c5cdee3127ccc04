// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// inProcess serves a fresh cache on a unix socket in the test process,
// for benchmarks and profiles of the connection handling.
func inProcess(b *testing.B) string {
	sock := b.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	c := cache.New(cache.Config{MaxSessions: 100000, MaxBytes: 256 << 20})
	s := New(Options{Store: c.Store(), MinLifetime: 300 * time.Second})
	go s.Serve(ln)
	b.Cleanup(func() { s.Shutdown(ln) })
	return sock
}

func request(uid uint32, op proto.Op, payload []byte) []byte {
	b, err := proto.AppendMessage(nil, &proto.Message{UID: uid, Op: op, Payload: payload})
	if err != nil {
		panic(err)
	}
	return b
}

func prefill(b *testing.B, sock string, n int) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd := proto.NewReader(c, proto.WantResponses)
	data := make([]byte, 200)
	for i := 0; i < n; i++ {
		c.Write(request(1, proto.OpAdd, proto.AppendAddRequest(nil, 600000, []byte("session-"+strconv.Itoa(i)), data)))
		if m, err := rd.ReadMessage(); err != nil || m.Payload[0] != 0 {
			b.Fatalf("prefill add %d: %v", i, err)
		}
	}
}

// BenchmarkPersistentGet: one connection, one GET at a time.
func BenchmarkPersistentGet(b *testing.B) {
	sock := inProcess(b)
	prefill(b, sock, 1000)
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd := proto.NewReader(c, proto.WantResponses)
	req := request(7, proto.OpGet, []byte("session-7"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Write(req)
		if m, err := rd.ReadMessage(); err != nil || len(m.Payload) != 200 {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectPerGet: a new connection per GET, as Apache does.
func BenchmarkConnectPerGet(b *testing.B) {
	sock := inProcess(b)
	prefill(b, sock, 1000)
	req := request(7, proto.OpGet, []byte("session-7"))
	buf := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		n := 0
		for n < 14+200 {
			k, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		c.Close()
	}
}

// BenchmarkConnectPerGetRaw is BenchmarkConnectPerGet with a client of raw
// system calls that allocates nothing, so that -benchmem shows what the
// server allocates per connection; cpu-us/op is the process's CPU time
// (client and server) per connection.
func BenchmarkConnectPerGetRaw(b *testing.B) {
	sock := inProcess(b)
	prefill(b, sock, 1000)
	req := request(7, proto.OpGet, []byte("session-7"))
	buf := make([]byte, 4096)
	sa := &syscall.SockaddrUnix{Name: sock}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := syscall.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		if _, err := syscall.Write(fd, req); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < 14+200; {
			k, err := syscall.Read(fd, buf[n:])
			if err != nil || k == 0 {
				b.Fatalf("read: %d, %v", k, err)
			}
			n += k
		}
		syscall.Close(fd)
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
}

// BenchmarkRegistry: a connection's admission to the limits and its
// leaving, with others live (the per-connection bookkeeping of
// MaxConns).
func BenchmarkRegistry(b *testing.B) {
	for _, live := range []int{1, 100} {
		b.Run(strconv.Itoa(live), func(b *testing.B) {
			var r registry
			for i := 0; i < live; i++ {
				r.admit(new(connState), DefaultMaxConns, time.Now(), time.Second)
			}
			cs := new(connState)
			now := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.admit(cs, DefaultMaxConns, now, time.Second)
				r.leave(cs)
			}
		})
	}
}
