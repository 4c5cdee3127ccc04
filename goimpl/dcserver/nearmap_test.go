// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"net"
	"syscall"
	"testing"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
)

// probeMap GETs proto.NearMapID on a fresh connection to sock: the map
// it was handed, mapped, or nil and the answer's payload.
func probeMap(t *testing.T, sock string) ([]byte, []byte) {
	t.Helper()
	c := dial(t, sock)
	c.send(3, proto.OpGet, proto.NearMapID)
	buf, oob := make([]byte, 256), make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.nc.(*net.UnixConn).ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	var a proto.Assembler
	m, _, err := a.Decode(buf[:n])
	if err != nil || m == nil || m.UID != 3 {
		t.Fatalf("answer %+v, %v", m, err)
	}
	cms, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	var fds []int
	for _, cm := range cms {
		r, _ := syscall.ParseUnixRights(&cm)
		fds = append(fds, r...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, m.Payload
	}
	defer syscall.Close(fds[0])
	var st syscall.Stat_t
	syscall.Fstat(fds[0], &st)
	b, err := syscall.Mmap(fds[0], 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(b) })
	return b, m.Payload
}

func inMap(b []byte, id string) (string, bool) {
	d, ok := nearmap.Lookup(b, []byte(id), nearmap.Now(), nil)
	return string(d), ok
}

// The map holds what the cache was given, loses what a REMOVE or a TAKE
// names before they are answered, and is left unread after Shutdown; in
// an event loop and served by goroutines alike.
func TestNearMapOfTheCache(t *testing.T) {
	for _, loops := range []int{0, -1} {
		m, err := nearmap.New(64)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s, ln, sock := serveLn(t, Options{Store: cache.New(cache.Config{}).Store(), Notify: true, NearMap: m, Loops: loops,
			Features: func() uint32 { return proto.FeatureTake }})
		b, pay := probeMap(t, sock)
		if b == nil || string(pay) != nearmap.ProbeAnswer {
			t.Fatalf("loops %d: the probe answered %q without a map", loops, pay)
		}
		c := dial(t, sock)
		add := func(id string) {
			t.Helper()
			if r := c.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte(id), []byte("data-"+id))); !bytes.Equal(r, []byte{0}) {
				t.Fatalf("add %s: %x", id, r)
			}
		}
		add("a")
		add("b")
		if d, ok := inMap(b, "a"); !ok || d != "data-a" {
			t.Fatalf("loops %d: an ADD: map has %q %v", loops, d, ok)
		}
		if r := c.roundTrip(proto.OpAdd, proto.AppendAddRequest(nil, 60000, []byte("a"), []byte("other"))); bytes.Equal(r, []byte{0}) {
			t.Fatal("a second ADD of one id stored")
		}
		if d, _ := inMap(b, "a"); d != "data-a" {
			t.Fatalf("a refused ADD changed the map: %q", d)
		}
		c.roundTrip(proto.OpRemove, []byte("a"))
		if _, ok := inMap(b, "a"); ok {
			t.Fatal("a REMOVE answered left the map's entry")
		}
		if r := c.roundTrip(proto.OpTake, []byte("b")); string(r) != "data-b" {
			t.Fatalf("take: %q", r)
		}
		if _, ok := inMap(b, "b"); ok {
			t.Fatal("a TAKE answered left the map's entry")
		}
		add("c")
		s.Shutdown(ln)
		if _, ok := inMap(b, "c"); ok {
			t.Fatal("the map is read after Shutdown")
		}
	}
}

// Without a map (or on a connection that asked something first) the
// probe is a miss.
func TestNearMapProbeMiss(t *testing.T) {
	_, sock := serveT(t, Options{Store: cache.New(cache.Config{}).Store()})
	if b, pay := probeMap(t, sock); b != nil || !bytes.Equal(pay, []byte{proto.ResultNotOK}) {
		t.Fatalf("without a map: %q", pay)
	}
	m, err := nearmap.New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, sock = serveT(t, Options{Store: cache.New(cache.Config{}).Store(), NearMap: m})
	c := dial(t, sock)
	// two requests in one write: the probe is not the first
	c.nc.Write(append(request(1, proto.OpGet, []byte("x")), request(2, proto.OpGet, proto.NearMapID)...))
	c.recv()
	if a := c.recv(); a.UID != 2 || !bytes.Equal(a.Payload, []byte{proto.ResultNotOK}) {
		t.Fatalf("a probe behind another request: %+v", a)
	}
}
