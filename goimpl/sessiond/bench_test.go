// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
)

// BenchmarkGetRoundTrip measures a GET hit on loopback from send to reply
// received, the path stunnel waits on for at most one scheduler tick.
// socket=reused keeps one client socket; socket=per-request opens a new one
// for every GET, as stunnel does. Reported: p50 and p99 latency in µs.
func BenchmarkGetRoundTrip(b *testing.B) {
	for _, mode := range []string{"reused", "per-request"} {
		b.Run("socket="+mode, func(b *testing.B) {
			s := New(cache.New(cache.Config{}).Store(), Options{})
			addr := startServer(b, s)
			k := key(5)
			value := make([]byte, 180) // a typical TLS 1.2 session, DER
			s.Handle(newPacket(k, 3600, value), make([]byte, MaxDatagram))
			req := (&Packet{Type: TypeGet, Key: k}).Append(nil)
			raddr := net.UDPAddrFromAddrPort(addr)
			buf := make([]byte, 2048)
			var shared *net.UDPConn
			if mode == "reused" {
				shared = dial(b, addr)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				c := shared
				if c == nil {
					var err error
					if c, err = net.DialUDP("udp4", nil, raddr); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				c.SetReadDeadline(start.Add(time.Second))
				n, err := c.Read(buf)
				if err != nil || n != HeaderSize+len(value) || buf[1] != TypeFound {
					b.Fatalf("reply %x, %v", buf[:n], err)
				}
				lat = append(lat, time.Since(start))
				if shared == nil {
					c.Close()
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkHandle is the server's work per GET hit, without the network.
func BenchmarkHandle(b *testing.B) {
	s := New(cache.New(cache.Config{}).Store(), Options{})
	out := make([]byte, MaxDatagram)
	s.Handle(newPacket(key(5), 3600, make([]byte, 180)), out)
	req := (&Packet{Type: TypeGet, Key: key(5)}).Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if s.Handle(req, out) != HeaderSize+180 {
			b.Fatal("miss")
		}
	}
}
