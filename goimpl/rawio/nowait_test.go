// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"
)

// NoWait reads return ErrWouldBlock instead of waiting; after a read that
// took less than it asked for, the next says so without reading (the
// socket was empty) until Readable, even when something has come since.
func TestNoWaitRead(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := pair(t, network)
			var c Conn
			c.Reset(b)
			c.NoWait = true
			buf := make([]byte, 64)
			if n, err := c.Read(buf); err != ErrWouldBlock {
				t.Fatalf("read of an empty socket: %d %v, want ErrWouldBlock", n, err)
			}
			a.Write([]byte("one"))
			var n int
			var err error
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
				if n, err = c.Read(buf); err != ErrWouldBlock {
					break
				}
				c.Readable()
				time.Sleep(time.Millisecond)
			}
			if err != nil || string(buf[:n]) != "one" {
				t.Fatalf("read: %q %v", buf[:n], err)
			}
			a.Write([]byte("two"))
			time.Sleep(20 * time.Millisecond) // no harm if it has not come: ErrWouldBlock either way
			if n, err := c.Read(buf); err != ErrWouldBlock {
				t.Fatalf("read after a short read, before Readable: %q %v, want ErrWouldBlock", buf[:n], err)
			}
			c.Readable()
			c.NoWait = false
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(&c, buf[:3]); err != nil || string(buf[:3]) != "two" {
				t.Fatalf("read after Readable: %q %v", buf[:3], err)
			}
		})
	}
}

// TryWrite writes what the socket takes and says ErrWouldBlock for the
// rest, without waiting and without WriteWait.
func TestTryWrite(t *testing.T) {
	a, b := pair(t, "unix")
	var c Conn
	c.Reset(b)
	c.WriteWait = func() { t.Error("TryWrite called WriteWait") }
	big := bytes.Repeat([]byte{'x'}, 8<<20)
	n, err := c.TryWrite(big)
	if err != ErrWouldBlock || n <= 0 || n >= len(big) {
		t.Fatalf("TryWrite of more than the socket holds: %d %v, want part and ErrWouldBlock", n, err)
	}
	got := make([]byte, n)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(a, got); err != nil || !bytes.Equal(got, big[:n]) {
		t.Fatalf("reading what TryWrite wrote: %v", err)
	}
	if n, err := c.TryWrite([]byte("small")); err != nil || n != 5 {
		t.Fatalf("TryWrite with room: %d %v", n, err)
	}
}

// Mute leaves the socket out of the runtime poller's reading too; Quiet
// puts reading back, Loud everything.
func TestMute(t *testing.T) {
	_, b := pair(t, "unix")
	before := QuietCount()
	reg, ok := Quiet(b)
	if !ok {
		t.Fatal("Quiet changed nothing")
	}
	events := func() uint32 {
		var st syscall.Stat_t
		if err := syscall.Fstat(reg.fd, &st); err != nil {
			t.Fatal(err)
		}
		poller.mu.Lock()
		defer poller.mu.Unlock()
		r, ok := findRegistration(poller.fd, reg.fd, st.Ino)
		if !ok {
			t.Fatal("the registration is gone")
		}
		return r.events & (syscall.EPOLLIN | syscall.EPOLLOUT)
	}
	for i, step := range []struct {
		f    func()
		want uint32
	}{
		{reg.Mute, 0}, {reg.Quiet, syscall.EPOLLIN}, {reg.Mute, 0}, {reg.Loud, syscall.EPOLLIN | syscall.EPOLLOUT},
	} {
		step.f()
		if ev := events(); ev != step.want {
			t.Fatalf("step %d: watched for %#x, want %#x", i, ev, step.want)
		}
	}
	if n := QuietCount(); n != before {
		t.Fatalf("%d quiet registrations after Loud, want %d", n, before)
	}
}
