// SPDX-License-Identifier: Apache-2.0

package sessiond

import (
	"slices"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"

	"golang.org/x/sys/unix"
)

// BenchmarkStunnelGet repeats stunnel's GET exactly, with blocking system
// calls as stunnel makes them: a new UDP socket, sendto, SO_RCVTIMEO of
// 200 µs, recv, close. (The kernel turns 200 µs into whole scheduler ticks:
// on a HZ=250 kernel recv gave up after 3.9 ms at the earliest.)
// Reported: p50/p99 latency of the replies received, in µs, and the
// percentage of GETs that timed out, which stunnel counts as a miss.
func BenchmarkStunnelGet(b *testing.B) {
	s := New(cache.New(cache.Config{}).Store(), Options{})
	addr := startServer(b, s)
	k := key(6)
	value := make([]byte, 180)
	s.Handle(newPacket(k, 3600, value), make([]byte, MaxDatagram))
	req := (&Packet{Type: TypeGet, Key: k}).Append(nil)
	to := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	buf := make([]byte, MaxDatagram)
	tv := unix.Timeval{Usec: 200}
	lat := make([]time.Duration, 0, b.N)
	timeouts := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			b.Fatal(err)
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			b.Fatal(err)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		for err == unix.EINTR { // the Go runtime's preemption signal
			n, _, err = unix.Recvfrom(fd, buf, 0)
		}
		d := time.Since(start)
		unix.Close(fd)
		switch {
		case err == unix.EAGAIN:
			timeouts++
		case err != nil:
			b.Fatal(err)
		case n != HeaderSize+len(value) || buf[1] != TypeFound:
			b.Fatalf("reply %x", buf[:n])
		default:
			lat = append(lat, d)
		}
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("every GET timed out")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(100*float64(timeouts)/float64(b.N), "timeout-%")
}
