// SPDX-License-Identifier: Apache-2.0

package tooltest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// Rules checks the distcache rules over the wire against a running
// dc_server or dc_client at network/addr, whatever keeps its sessions: the
// result codes of every operation, a duplicate ADD keeping the first data,
// the limits (ids of 1..64 bytes, the largest session a message carries,
// lifetimes up to 7 days), binary ids, expiry to the millisecond without
// reads extending it, and sub-second lifetimes: stored for minLifetime
// (the tool's -minlifetime) or, when that is 0, as sent. Ids are fresh per
// call, so the store need not be empty.
func Rules(t *testing.T, network, addr string, minLifetime time.Duration) {
	c := Dial(t, network, addr)
	run := fmt.Sprintf("%x-", time.Now().UnixNano())
	uid := uint32(0)
	do := func(op proto.Op, payload []byte) []byte {
		t.Helper()
		uid++
		return RoundTrip(t, c, uid, op, payload).Payload
	}
	want := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: got %d bytes %.40x, want %d bytes %.40x", what, len(got), got, len(want), want)
		}
	}
	ok, no := []byte{proto.ResultOK}, []byte{proto.ResultNotOK}
	id := func(s string) []byte { return []byte(run + s) }
	hour := uint32(3600000)

	func() { // Operations
		k := id("ops")
		want("ADD", do(proto.OpAdd, AddPayload(hour, k, []byte("first data"))), ok)
		want("ADD of a live id", do(proto.OpAdd, AddPayload(hour, k, []byte("second"))), []byte{proto.AddErrMatching})
		want("GET keeps the first", do(proto.OpGet, k), []byte("first data"))
		want("HAVE", do(proto.OpHave, k), ok)
		want("REMOVE", do(proto.OpRemove, k), ok)
		want("REMOVE again", do(proto.OpRemove, k), no)
		want("GET after REMOVE", do(proto.OpGet, k), no)
		want("HAVE after REMOVE", do(proto.OpHave, k), no)
		want("ADD after REMOVE", do(proto.OpAdd, AddPayload(hour, k, []byte("again"))), ok)
		want("GET", do(proto.OpGet, k), []byte("again"))
	}()
	func() { // Limits
		long := append(id("long-"), bytes.Repeat([]byte{0xa5}, 64)...)[:64]
		big := bytes.Repeat([]byte("0123456789abcdef"), proto.MaxPayload/16)[:proto.MaxPayload-8-64]
		want("ADD with a 64-byte id and the largest data", do(proto.OpAdd, AddPayload(hour, long, big)), ok)
		want("GET of it", do(proto.OpGet, long), big)
		want("ADD with a 65-byte id", do(proto.OpAdd, AddPayload(hour, append(long, 'x'), []byte("d"))), []byte{proto.AddErrIDRange})
		want("HAVE of a 65-byte id", do(proto.OpHave, append(long, 'x')), no)
		want("ADD with an empty id", do(proto.OpAdd, AddPayload(hour, nil, []byte("d"))), []byte{proto.AddErrIDRange})
		want("ADD without data", do(proto.OpAdd, AddPayload(hour, id("nodata"), nil)), []byte{proto.AddErrCorrupt})
		want("ADD for 7 days", do(proto.OpAdd, AddPayload(proto.MaxExpiry, id("week"), []byte("d"))), ok)
		want("ADD for 7 days and 1 ms", do(proto.OpAdd, AddPayload(proto.MaxExpiry+1, id("over"), []byte("d"))), []byte{proto.AddErrTimeoutRange})
		want("HAVE of the refused one", do(proto.OpHave, id("over")), no)
	}()
	func() { // BinaryIDs
		ids := [][]byte{{0}, {0, 0}, {'a', 0}, {0, 'a'}, {0xff, 0xfe}, []byte(run + "\r\n*1\r\n")}
		for i, k := range ids {
			if i < 5 {
				k = append([]byte(run), k...)
			}
			ids[i] = k
			want(fmt.Sprintf("ADD of id %x", k), do(proto.OpAdd, AddPayload(hour, k, []byte{'v', byte(i)})), ok)
		}
		for i, k := range ids {
			want(fmt.Sprintf("GET of id %x", k), do(proto.OpGet, k), []byte{'v', byte(i)})
		}
	}()
	func() { // Expiry
		const ttl = 1200 * time.Millisecond
		k := id("expiry")
		sent := time.Now()
		want("ADD", do(proto.OpAdd, AddPayload(uint32(ttl.Milliseconds()), k, []byte("short"))), ok)
		for {
			got := do(proto.OpGet, k) // reads do not extend the lifetime
			at := time.Now()
			if bytes.Equal(got, no) {
				if early := sent.Add(ttl - time.Millisecond).Sub(at); early > 0 {
					t.Fatalf("a %v session gone %v early", ttl, early)
				}
				break
			}
			want("GET before expiry", got, []byte("short"))
			if at.Sub(sent) > ttl+3*time.Second {
				t.Fatalf("a %v session still there after %v", ttl, at.Sub(sent))
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
		want("HAVE after expiry", do(proto.OpHave, k), no)
		want("ADD after expiry", do(proto.OpAdd, AddPayload(hour, k, []byte("new"))), ok)
	}()
	func() { // ShortLifetime
		k := id("short")
		if minLifetime == 0 {
			want("ADD for 0 ms", do(proto.OpAdd, AddPayload(0, k, []byte("d"))), ok)
			Eventually(t, 3*time.Second, func() bool { return bytes.Equal(do(proto.OpHave, k), no) }, "a 0 ms session goes")
			return
		}
		want("ADD for 300 ms", do(proto.OpAdd, AddPayload(300, k, []byte("kept"))), ok)
		// Still there well past 300 ms: it lives for minLifetime.
		for start := time.Now(); time.Since(start) < 800*time.Millisecond; {
			want("GET of a sub-second session", do(proto.OpGet, k), []byte("kept"))
			time.Sleep(50 * time.Millisecond) // polling interval
		}
	}()
}
