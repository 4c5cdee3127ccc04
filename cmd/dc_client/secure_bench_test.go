// SPDX-License-Identifier: Apache-2.0

package main

// BenchmarkLink measures the dc_client path (application -> unix socket ->
// proxy -> one persistent upstream connection -> dc_server's loop -> the
// in-memory cache), built in-process from the same packages the daemons
// use, plain, with TLS (mutual, TLS 1.3), with sealing, and with both,
// under the same load. make bench-secure prints the ratios to plain.

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/accept"
	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/dcserver"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/seal"
	"github.com/distcache-go/distcache/goimpl/store"
	"github.com/distcache-go/distcache/goimpl/tlsconf"
	"github.com/distcache-go/distcache/goimpl/tlsconf/tlstest"
	"github.com/distcache-go/distcache/goimpl/upstream"
	"github.com/distcache-go/distcache/internal/cpumeter"
)

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}

var _ accept.Logger = quietLog{}

// linkStack is one dc_server + dc_client pair in this process; sock is the
// dc_client's local socket.
func linkStack(b *testing.B, useTLS, useSeal bool) (sock string) {
	dir := b.TempDir()
	var srvTLS *tlsconf.Server
	var cliTLS *tlsconf.Client
	if useTLS {
		ca := tlstest.NewCA(b, "bench CA")
		caFile := ca.Write(b, dir, "ca")
		sc, sk := ca.Issue(b, tlstest.Cert{CN: "server", Server: true}).Write(b, dir, "server")
		cc, ck := ca.Issue(b, tlstest.Cert{CN: "client", Client: true}).Write(b, dir, "client")
		var err error
		if srvTLS, err = tlsconf.NewServer(tlsconf.Options{Cert: sc, Key: sk, CA: caFile}); err != nil {
			b.Fatal(err)
		}
		if cliTLS, err = tlsconf.NewClient(tlsconf.Options{CA: caFile, Cert: cc, Key: ck, Name: "localhost"}); err != nil {
			b.Fatal(err)
		}
	}
	c := cache.New(cache.Config{MaxSessions: 1 << 20, MaxBytes: 1 << 30})
	srv := dcserver.New(dcserver.Options{Store: c.Store(), TLS: srvTLS, Log: quietLog{}})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(tcp)
	addr := tcp.Addr().String()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	if cliTLS != nil {
		dial = cliTLS.Dialer(addr, dial)
	}
	up, err := upstream.New(upstream.Options{
		Servers: []upstream.Server{{Name: addr, Dial: dial}},
		Timeout: 10 * time.Second, Retry: 50 * time.Millisecond, Log: quietLog{},
	})
	if err != nil {
		b.Fatal(err)
	}
	var st store.Store = up
	if useSeal {
		var k seal.Key
		k.ID = "k1"
		kr, err := seal.NewKeyring(k)
		if err != nil {
			b.Fatal(err)
		}
		st = seal.New(up, kr, seal.Options{})
	}
	p := proxy.New(proxy.Options{Handler: &store.Handler{Store: st, Unavailable: upstream.Answer}, Log: quietLog{}})
	sock = dir + "/local"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)
	b.Cleanup(func() {
		p.Shutdown(ln, time.Second)
		up.Close()
		srv.Shutdown(tcp)
	})
	// Wait until the upstream connection answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := up.Add(context.Background(), []byte("warm-up"), []byte("x"), time.Minute); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sock
}

// linkClient is one application connection doing the load's operations.
type linkClient struct {
	nc  net.Conn
	rd  *proto.Reader
	buf []byte
	uid uint32
}

func (c *linkClient) do(b *testing.B, op proto.Op, payload []byte) []byte {
	c.uid++
	var err error
	c.buf, err = proto.AppendMessage(c.buf[:0], &proto.Message{UID: c.uid, Op: op, Payload: payload})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		b.Fatal(err)
	}
	m, err := c.rd.ReadMessage()
	if err != nil {
		b.Fatal(err)
	}
	return m.Payload
}

// BenchmarkLink: each application connection adds one new 512-byte
// session for every three it reads back (a farm resuming three handshakes
// in four), 8 connections per CPU.
func BenchmarkLink(b *testing.B) {
	for _, mode := range []struct {
		name      string
		tls, seal bool
	}{{"plain", false, false}, {"tls", true, false}, {"seal", false, true}, {"tls+seal", true, true}} {
		b.Run("mode="+mode.name, func(b *testing.B) {
			sock := linkStack(b, mode.tls, mode.seal)
			data := make([]byte, 512)
			for i := range data {
				data[i] = byte(i)
			}
			var next atomic.Int64
			b.SetParallelism(8)
			b.ReportAllocs()
			cpu0 := cpumeter.Process()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				nc, err := net.Dial("unix", sock)
				if err != nil {
					b.Error(err)
					return
				}
				defer nc.Close()
				c := &linkClient{nc: nc, rd: proto.NewReader(nc, proto.WantResponses)}
				var ids [][]byte
				for i := 0; pb.Next(); i++ {
					if i%4 == 0 || len(ids) == 0 {
						id := []byte(fmt.Sprintf("session-%020d", next.Add(1)))
						if r := c.do(b, proto.OpAdd, proto.AppendAddRequest(nil, 300000, id, data)); len(r) != 1 || r[0] != proto.ResultOK {
							b.Fatalf("ADD answered %q", r)
						}
						ids = append(ids, id)
						if len(ids) > 64 {
							ids = ids[1:]
						}
						continue
					}
					if r := c.do(b, proto.OpGet, ids[i%len(ids)]); len(r) != len(data) {
						b.Fatalf("GET answered %d bytes", len(r))
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			// CPU time of the whole stack per operation: on a loaded
			// machine a steadier measure of cost than the wall clock.
			cpumeter.Report(b, cpumeter.Process()-cpu0)
		})
	}
}
