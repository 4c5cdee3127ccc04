// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// Quiet drops the writing edge from a socket's registration, Loud puts it
// back; a quiet socket still reads, and writes that wait for room complete
// once Loud is called from WriteWait.
func TestQuietAndLoud(t *testing.T) {
	a, b := pair(t, "unix")
	before := QuietCount()
	reg, ok := Quiet(b)
	if !ok {
		t.Fatal("Quiet changed nothing")
	}
	if n := QuietCount(); n != before+1 {
		t.Fatalf("quiet registrations: %d, want %d", n, before+1)
	}
	var c Conn
	c.Reset(b)
	waited := 0
	c.WriteWait = func() { waited++; reg.Loud() }
	a.Write([]byte("ping"))
	buf := make([]byte, 4)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(&c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read on a quiet socket: %q %v", buf, err)
	}
	big := bytes.Repeat([]byte{'x'}, 4<<20) // far more than the socket holds
	done := make(chan error, 1)
	b.SetWriteDeadline(time.Now().Add(10 * time.Second))
	go func() { _, err := c.Write(big); done <- err }()
	got := make([]byte, len(big))
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(a, got); err != nil {
		t.Fatalf("reading what the quiet socket wrote: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if waited != 1 || QuietCount() != before {
		t.Errorf("WriteWait called %d times, quiet registrations %d; want 1 and %d", waited, QuietCount(), before)
	}
}
