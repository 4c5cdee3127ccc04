package main

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/distcache-go/distcache/cmd/internal/tool"
	"github.com/distcache-go/distcache/cmd/internal/tooltest"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// inProcess runs the server's accept loop in the test process on a unix
// socket, for benchmarks and profiles of the connection handling.
func inProcess(b *testing.B) string {
	dir := tooltest.TempDir(b)
	a, _ := tool.ParseAddr("UNIX:" + dir + "/s")
	ln, err := tool.Listen(a)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &config{sessions: 100000, maxBytes: 256 << 20, minLifetime: 300, frameTimeout: 10 * time.Second}
	s := &server{cfg: cfg, be: newBackend(cfg)}
	s.set.Log = &s.log
	go s.set.Serve(ln, func(nc net.Conn) { newConn(s, nc).serve() })
	b.Cleanup(func() { s.set.Shutdown(ln, time.Second) })
	return dir + "/s"
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
		c.Write(tooltest.Request(1, proto.OpAdd, tooltest.AddPayload(600000, []byte("session-"+strconv.Itoa(i)), data)))
		rd.ReadMessage()
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
	req := tooltest.Request(7, proto.OpGet, []byte("session-7"))
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
	req := tooltest.Request(7, proto.OpGet, []byte("session-7"))
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
