// SPDX-License-Identifier: Apache-2.0

package proxy_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/dcserver"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/upstream"
)

// dcClient runs what dc_client runs, in the test process: a dc_server
// (dcserver over the in-memory cache), an upstream to it and the proxy in
// front, on unix sockets. It returns the proxy's socket with 1000
// sessions of 200 bytes stored ("session-<i>").
func dcClient(b *testing.B) string {
	dir := b.TempDir()
	sln, err := net.Listen("unix", dir+"/srv")
	if err != nil {
		b.Fatal(err)
	}
	srv := dcserver.New(dcserver.Options{Store: cache.New(cache.Config{MaxSessions: 100000, MaxBytes: 256 << 20}).Store()})
	go srv.Serve(sln)
	up, err := upstream.New(upstream.Options{Timeout: 100 * time.Millisecond, Log: &logLines{},
		Servers: []upstream.Server{{Name: "srv", Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", dir+"/srv")
		}}}})
	if err != nil {
		b.Fatal(err)
	}
	pln, err := net.Listen("unix", dir+"/p")
	if err != nil {
		b.Fatal(err)
	}
	p := proxy.New(proxy.Options{Handler: &store.Handler{Store: up, Unavailable: upstream.Answer}, Log: &logLines{}})
	go p.Serve(pln)
	b.Cleanup(func() { p.Shutdown(pln, time.Second); up.Close(); srv.Shutdown(sln) })

	c, err := net.Dial("unix", dir+"/p")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd := proto.NewReader(c, proto.WantResponses)
	data := make([]byte, 200)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 1000; i++ {
		msg, _ := proto.AppendMessage(nil, &proto.Message{UID: 1, Op: proto.OpAdd,
			Payload: proto.AppendAddRequest(nil, 600000, []byte("session-"+strconv.Itoa(i)), data)})
		c.Write(msg)
		m, err := rd.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Payload) != 1 || m.Payload[0] != 0 {
			if time.Now().After(deadline) {
				b.Fatalf("prefill: %x", m.Payload)
			}
			i-- // not connected yet
			time.Sleep(time.Millisecond)
		}
	}
	return dir + "/p"
}

// getLoop runs b.N GETs from clients goroutines, over one connection each
// (persistent) or a connection per GET. With a gap, each client busies
// itself that long between two GETs, as Apache does with the handshake
// around each lookup, so the proxy goes idle between requests and is woken
// for each. It reports the process's CPU time per GET beyond the gaps
// (client, proxy, upstream and server together) and its voluntary context
// switches per GET: waking threads is what an idle proxy pays for most.
func getLoop(b *testing.B, sock string, clients int, persistent bool, gap time.Duration) {
	req, _ := proto.AppendMessage(nil, &proto.Message{UID: 7, Op: proto.OpGet, Payload: []byte("session-7")})
	var wg sync.WaitGroup
	per := b.N / clients
	var ru0, ru1 syscall.Rusage
	b.ResetTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var rd *proto.Reader
			for i := 0; i < per; i++ {
				if c == nil {
					var err error
					if c, err = net.Dial("unix", sock); err != nil {
						b.Error(err)
						return
					}
					rd = proto.NewReader(c, proto.WantResponses)
				}
				c.Write(req)
				if m, err := rd.ReadMessage(); err != nil || len(m.Payload) != 200 {
					b.Errorf("GET: %v", err)
					return
				}
				if !persistent {
					c.Close()
					c = nil
				}
				if gap > 0 {
					time.Sleep(gap)
				}
			}
			if c != nil {
				c.Close()
			}
		}()
	}
	wg.Wait()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b.StopTimer()
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) -
		syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
	n := float64(per * clients)
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/op")
	b.ReportMetric(float64(ru1.Nvcsw-ru0.Nvcsw)/n, "vcsw/op")
}

// GETs of a 200-byte session through dc_client's packages: one or four
// clients, over one connection each or a new connection per GET, and one
// client with a gap of 200 µs between its GETs (Apache's pattern: every
// request finds the proxy idle).
func BenchmarkDCClientGet(b *testing.B) {
	for _, c := range []struct {
		name       string
		clients    int
		persistent bool
		gap        time.Duration
	}{{"persistent-1", 1, true, 0}, {"persistent-4", 4, true, 0}, {"connect-1", 1, false, 0}, {"connect-4", 4, false, 0},
		{"spaced-1", 1, true, 200 * time.Microsecond}} {
		b.Run(c.name, func(b *testing.B) { getLoop(b, dcClient(b), c.clients, c.persistent, c.gap) })
	}
}
