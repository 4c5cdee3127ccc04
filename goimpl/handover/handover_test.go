// SPDX-License-Identifier: Apache-2.0

package handover

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// A connection passed with its pending bytes keeps working from the
// receiving end, for TCP and unix sockets, with more bytes than one packet.
func TestSendReceive(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = t.TempDir() + "/s"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			nc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			snd, remote, err := Pair()
			if err != nil {
				t.Fatal(err)
			}
			rcv, err := NewReceiver(remote)
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			out := bytes.Repeat([]byte("answer "), 20000) // 140 kB: several packets
			in := []byte("half a request")
			sent := make(chan error, 1)
			go func() {
				err := snd.Send(nc, out, in)
				if err == nil {
					err = snd.Close()
				}
				sent <- err
			}()
			got, gotOut, gotIn, err := rcv.Receive()
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotOut, out) || !bytes.Equal(gotIn, in) {
				t.Fatalf("pending bytes: %d and %q", len(gotOut), gotIn)
			}
			if _, _, _, err := rcv.Receive(); err != io.EOF {
				t.Fatalf("after Close: %v, want EOF", err)
			}
			// The sender's descriptor is closed, the connection is not.
			if _, err := nc.Write([]byte("x")); err == nil {
				t.Fatal("the sender's descriptor is still open")
			}
			client.SetDeadline(time.Now().Add(5 * time.Second))
			got.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := client.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(got, b); err != nil || string(b) != "ping" {
				t.Fatalf("read through the passed connection: %q %v", b, err)
			}
			if _, err := got.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(client, b); err != nil || string(b) != "pong" {
				t.Fatalf("the client reads: %q %v", b, err)
			}
		})
	}
}
