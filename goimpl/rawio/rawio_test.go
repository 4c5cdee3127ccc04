// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a connection over network ("tcp" or "unix").
func pair(t testing.TB, network string) (a, b net.Conn) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = t.TempDir() + "/s"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestRawReadWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := pair(t, network)
			var c Conn
			c.Reset(b)
			if !c.Raw() {
				t.Fatal("a plain socket is not read raw")
			}
			// A write larger than the socket buffers completes once the
			// peer reads: Write waits for room.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
			done := make(chan error, 1)
			go func() {
				n, err := c.Write(big)
				if err == nil && n != len(big) {
					err = errors.New("short write")
				}
				done <- err
			}()
			got := make([]byte, len(big))
			if _, err := io.ReadFull(a, got); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("the data written differs")
			}
			// Read waits for data, then returns what there is.
			go func() { time.Sleep(10 * time.Millisecond); a.Write([]byte("hello")) }()
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("read %q, %v", buf[:n], err)
			}
			a.Close()
			if n, err := c.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("at the end of the stream: %d, %v; want io.EOF", n, err)
			}
		})
	}
}

func TestRawDeadlinesAndClose(t *testing.T) {
	a, b := pair(t, "unix")
	var c Conn
	c.Reset(b)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
	b.SetReadDeadline(time.Time{})
	// A write that finds no room times out at the write deadline.
	b.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write(make([]byte, 16<<20)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write past the deadline: %v; want a timeout", err)
	}
	b.SetWriteDeadline(time.Time{})
	// A reset peer is ECONNRESET or EPIPE, as net.Conn reports it.
	a.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = c.Write([]byte("x"))
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("write to a closed peer: %v", werr)
	}
	b.Close()
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed connection: %v; want net.ErrClosed", err)
	}
}

func TestOtherConnsUseNetConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var c Conn
	c.Reset(b)
	if c.Raw() {
		t.Fatal("a pipe has no file descriptor to read raw")
	}
	go a.Write([]byte("ok"))
	buf := make([]byte, 4)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// BenchmarkPingPong: one byte each way on a unix socket, the echoing side
// read and written through net.Conn or through Conn. Run with -cpu 1 and
// compare the CPU time per op (the process's, not only wall time).
func BenchmarkPingPong(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "net.Conn"
		if raw {
			name = "rawio"
		}
		b.Run(name, func(b *testing.B) {
			x, y := pair(b, "unix")
			var c Conn
			if raw {
				c.Reset(y)
			} else {
				c.nc = y
			}
			go func() {
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 64)
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				x.Write(buf[:1])
				if _, err := x.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// One goroutine reading while another writes, as dc_client's server link
// does (go test -race).
func TestConcurrentReadWrite(t *testing.T) {
	a, b := pair(t, "tcp")
	var c Conn
	c.Reset(b)
	go io.Copy(a, a) // echo
	const n = 1 << 20
	go func() {
		chunk := bytes.Repeat([]byte{7}, 1000)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 4096)
	for got := 0; got < n; {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range buf[:k] {
			if x != 7 {
				t.Fatal("echo corrupted")
			}
		}
		got += k
	}
}

// WriteWait is called once for a write that waits for room, and not for
// one that does not.
func TestWriteWait(t *testing.T) {
	a, b := pair(t, "unix")
	var c Conn
	c.Reset(b)
	calls := 0
	c.WriteWait = func() { calls++ }
	if _, err := c.Write([]byte("small")); err != nil || calls != 0 {
		t.Fatalf("a write with room: %v, %d WriteWait calls; want none", err, calls)
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, a); close(done) }()
	if _, err := c.Write(make([]byte, 8<<20)); err != nil || calls != 1 {
		t.Fatalf("a write that waits: %v, %d WriteWait calls; want 1", err, calls)
	}
	b.Close()
	<-done
}

// A descriptor given to ResetFD is read and written without waiting:
// ErrWouldBlock where a net.Conn would block, io.EOF at the end.
func TestResetFDNeverWaits(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	var c Conn
	c.ResetFD(fds[0])
	if !c.Raw() {
		t.Fatal("not raw")
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("Read of nothing: %d, %v", n, err)
	}
	syscall.Write(fds[1], []byte("abc"))
	if n, err := c.Read(buf); n != 3 || err != nil || string(buf[:3]) != "abc" {
		t.Fatalf("Read: %d, %v", n, err)
	}
	big := make([]byte, 8<<20) // more than the socket buffers hold
	n, err := c.Write(big)
	if err != ErrWouldBlock || n <= 0 || n >= len(big) {
		t.Fatalf("Write of more than fits: %d, %v", n, err)
	}
	syscall.Shutdown(fds[1], syscall.SHUT_WR)
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end: %d, %v", n, err)
	}
	syscall.Close(fds[1])
	// the system call's error, said once
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) || err.Error() != "write: broken pipe" {
		t.Fatalf("Write to a closed peer: %v, want write: broken pipe", err)
	}
}
