// SPDX-License-Identifier: Apache-2.0

package rawio

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Mute takes a listener out of the runtime poller's epoll set and Unmute
// puts it back: an Accept after Unmute gets the connection that came while
// it was muted; an Accept waiting on a muted listener ends when it is
// closed.
func TestMuteAndUnmute(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ul := ln.(*net.UnixListener)
	m, ok := Mute(ul)
	if !ok {
		t.Fatal("Mute changed nothing")
	}
	if Registered(ul) {
		t.Fatal("a muted listener is still in the runtime's epoll set")
	}
	nc, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m.Unmute()
	if !Registered(ul) {
		t.Fatal("Unmute did not put the listener back")
	}
	ul.SetDeadline(time.Now().Add(10 * time.Second))
	ac, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after Unmute: %v", err)
	}
	ac.Close()

	if _, ok := Mute(ul); !ok {
		t.Fatal("second Mute changed nothing")
	}
	ul.SetDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept on a closed muted listener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end an Accept on a muted listener")
	}
	if Registered(ul) {
		t.Fatal("a closed listener is reported registered")
	}
}
