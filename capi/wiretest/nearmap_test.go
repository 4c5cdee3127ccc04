// SPDX-License-Identifier: Apache-2.0

package wiretest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/store"
)

func liveMap(t *testing.T, slots int) (*nearmap.Map, int64) {
	t.Helper()
	m, err := nearmap.New(slots)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	now := nearmap.Now()
	m.Reset(true)
	m.Renew(now + int64(time.Hour))
	return m, now
}

func cMap(t *testing.T, m *nearmap.Map) *NearMap {
	t.Helper()
	c := MapNear(m.ReadFD())
	if c == nil {
		t.Fatal("dcnm_map refused the writer's map")
	}
	t.Cleanup(c.Unmap)
	return c
}

// The C reader finds what the Go reader finds, for present, absent,
// expired, removed and flushed entries.
func TestNearMapReadersAgree(t *testing.T) {
	m, now := liveMap(t, 512)
	c := cMap(t, m)
	for i := range 600 {
		d := bytes.Repeat([]byte{byte(i)}, 1+i%nearmap.MaxData)
		m.Put(fmt.Appendf(nil, "id-%d", i), d, now+int64(i)*1000)
	}
	check := func(when string, at int64) {
		t.Helper()
		hits := 0
		for i := range 650 {
			id := fmt.Appendf(nil, "id-%d", i)
			gd, gok := nearmap.Lookup(m.Bytes(), id, at, nil)
			cd, cok := c.Lookup(id, at)
			if gok != cok || !bytes.Equal(gd, cd) {
				t.Fatalf("%s: id-%d: Go %v (%d bytes), C %v (%d bytes)", when, i, gok, len(gd), cok, len(cd))
			}
			if cok {
				hits++
			}
		}
		t.Logf("%s: %d hits", when, hits)
	}
	check("now", now)
	check("half expired", now+300*1000)
	for i := 0; i < 600; i += 3 {
		m.Remove(fmt.Appendf(nil, "id-%d", i))
	}
	check("removed", now)
	m.Reset(true)
	check("flushed", now)
	if _, ok := c.Lookup([]byte("id-1"), now); ok {
		t.Fatal("C read a flushed entry")
	}
	m.Put([]byte("x"), []byte("y"), now+int64(time.Hour))
	if d, ok := c.Lookup([]byte("x"), now); !ok || string(d) != "y" {
		t.Fatal("C missed a fresh entry")
	}
	if _, ok := c.Lookup([]byte("x"), now+int64(time.Hour)); ok {
		t.Fatal("C read past the lease")
	}
	if c.Stale(now, int64(time.Second)) || !c.Stale(now+int64(time.Hour)+int64(2*time.Second), int64(time.Second)) {
		t.Fatal("dcnm_stale")
	}
	m.Reset(false)
	if _, ok := c.Lookup([]byte("x"), now); ok {
		t.Fatal("C read a map that is off")
	}
}

// While the writer rewrites an entry, the C reader never returns data
// the writer did not write whole; on a machine whose stores are seen in
// order the sequence count catches a torn copy, elsewhere the sum.
func TestNearMapTornReads(t *testing.T) {
	m, now := liveMap(t, 2)
	c := cMap(t, m)
	id := []byte("contended")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			b := byte(k)
			m.Put(id, bytes.Repeat([]byte{b}, int(b)+1), now+int64(time.Hour))
		}
	}()
	total := 0
	deadline := time.Now().Add(5 * time.Second)
	for total < 20000 && time.Now().Before(deadline) {
		bad, hits := c.Tear(id, now, 2000)
		if bad != 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("%d of %d hits were torn", bad, hits)
		}
		total += hits
	}
	close(stop)
	wg.Wait()
	if total == 0 {
		t.Fatal("no hit at all while the writer ran")
	}
	t.Logf("%d whole hits", total)
}

// sealedFile is a memfd of b, sealed against shrinking unless open.
func sealedFile(t *testing.T, b []byte, seal bool) int {
	t.Helper()
	fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.Write(fd, b); err != nil {
		t.Fatal(err)
	}
	if seal {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// A map that is not what the writer makes is refused whole.
func TestNearMapRefusesOthers(t *testing.T) {
	m, _ := liveMap(t, 4)
	good := append([]byte(nil), m.Bytes()...)
	if c := MapNear(sealedFile(t, good, true)); c == nil {
		t.Fatal("a copy of a good map was refused")
	} else {
		c.Unmap()
	}
	bad := func(what string, b []byte, seal bool) {
		t.Helper()
		if c := MapNear(sealedFile(t, b, seal)); c != nil {
			c.Unmap()
			t.Fatalf("%s: mapped", what)
		}
	}
	bad("not sealed", good, false)
	edit := func(off int, v uint32) []byte {
		b := append([]byte(nil), good...)
		binary.NativeEndian.PutUint32(b[off:], v)
		return b
	}
	bad("magic", edit(nearmap.OffMagic, 0), true)
	bad("version", edit(nearmap.OffVersion, nearmap.Version+1), true)
	bad("slot size", edit(nearmap.OffSlotSize, nearmap.SlotSize/2), true)
	bad("odd slots", edit(nearmap.OffSlots, 3), true)
	bad("more slots than bytes", edit(nearmap.OffSlots, 6), true)
	bad("too short", good[:nearmap.HeaderSize+nearmap.SlotSize], true)
	if MapNear(-1) != nil {
		t.Fatal("mapped descriptor -1")
	}
}

// dialFD connects a raw socket to a unix path.
func dialFD(t *testing.T, path string) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return fd
}

func deadline() int64 { return (nearmap.Now() + int64(5*time.Second)) / 1000 }

// Through dc_client's proxy, the probe maps the proxy's map, and the
// connection serves on.
func TestNearMapProbeThroughTheProxy(t *testing.T) {
	m, now := liveMap(t, 16)
	m.Put([]byte("id"), []byte("data"), now+int64(time.Hour))
	sock := filepath.Join(t.TempDir(), "p")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Handler: &store.Handler{Store: nil}, NearMap: m})
	done := make(chan struct{})
	go func() { p.Serve(ln); close(done) }()
	defer func() { p.Shutdown(ln, time.Second); <-done }()
	fd := dialFD(t, sock)
	r, c := Probe(fd, 5, deadline())
	if r != ProbeMapped {
		t.Fatalf("probe: %d", r)
	}
	defer c.Unmap()
	if d, ok := c.Lookup([]byte("id"), now); !ok || string(d) != "data" {
		t.Fatalf("through the probed map: %q %v", d, ok)
	}
}

// fake answers one probe with answer (nil: closes) and the descriptors
// fds, and reports what it read.
func fake(t *testing.T, answer func(req *proto.Message) []byte, fds ...int) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "f")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := proto.NewReader(nc, proto.WantRequests)
		req, err := rd.ReadMessage()
		if err != nil {
			return
		}
		out := answer(req)
		if out == nil {
			return
		}
		var oob []byte
		if len(fds) > 0 {
			oob = syscall.UnixRights(fds...)
		}
		nc.(*net.UnixConn).WriteMsgUnix(out, oob, nil)
		var b [1]byte
		nc.Read(b[:]) // until the client closes
	}()
	return sock
}

func reply(uid uint32, payload []byte) []byte {
	b, _ := proto.AppendMessage(nil, &proto.Message{Response: true, UID: uid, Op: proto.OpGet, Payload: payload})
	return b
}

// The probe maps only a clean answer of the magic with a sealed map, and
// keeps a connection only after a clean answer.
func TestNearMapProbeAnswers(t *testing.T) {
	m, _ := liveMap(t, 4)
	unsealed := sealedFile(t, append([]byte(nil), m.Bytes()...), false)
	magic := []byte(nearmap.ProbeAnswer)
	for _, tc := range []struct {
		name   string
		answer func(*proto.Message) []byte
		fds    []int
		want   int
	}{
		{"the map", func(r *proto.Message) []byte { return reply(r.UID, magic) }, []int{m.ReadFD()}, ProbeMapped},
		{"the map and another descriptor", func(r *proto.Message) []byte { return reply(r.UID, magic) }, []int{m.ReadFD(), unsealed}, ProbeMapped},
		{"a miss", func(r *proto.Message) []byte { return reply(r.UID, []byte{proto.ResultNotOK}) }, nil, ProbeNone},
		{"the magic without a descriptor", func(r *proto.Message) []byte { return reply(r.UID, magic) }, nil, ProbeNone},
		{"a miss with a descriptor", func(r *proto.Message) []byte { return reply(r.UID, []byte{1}) }, []int{m.ReadFD()}, ProbeNone},
		{"an unsealed file", func(r *proto.Message) []byte { return reply(r.UID, magic) }, []int{unsealed}, ProbeNone},
		{"another uid", func(r *proto.Message) []byte { return reply(r.UID+1, magic) }, []int{m.ReadFD()}, ProbeFailed},
		{"more after the answer", func(r *proto.Message) []byte { return append(reply(r.UID, magic), 0) }, []int{m.ReadFD()}, ProbeFailed},
		{"garbage", func(*proto.Message) []byte { return bytes.Repeat([]byte{0xff}, 64) }, nil, ProbeFailed},
		{"a close", func(*proto.Message) []byte { return nil }, nil, ProbeFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan *proto.Message, 1)
			sock := fake(t, func(r *proto.Message) []byte {
				seen <- &proto.Message{UID: r.UID, Op: r.Op, Payload: append([]byte(nil), r.Payload...)}
				return tc.answer(r)
			}, tc.fds...)
			fd := dialFD(t, sock)
			before := openFDs(t)
			r, c := Probe(fd, 9, deadline())
			if c != nil {
				c.Unmap()
			}
			if r != tc.want {
				t.Fatalf("probe: %d, want %d", r, tc.want)
			}
			saw := <-seen
			if saw.UID != 9 || saw.Op != proto.OpGet || !proto.IsNearMapID(saw.Payload) {
				t.Fatalf("the server read %+v", saw)
			}
			if after := openFDs(t); after != before {
				t.Fatalf("%d descriptors open before the probe, %d after", before, after)
			}
		})
	}
}

// A probe the server never answers ends at its deadline.
func TestNearMapProbeDeadline(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fd := dialFD(t, sock)
	start := time.Now()
	if r, _ := Probe(fd, 1, (nearmap.Now()+int64(50*time.Millisecond))/1000); r != ProbeTimeout {
		t.Fatalf("probe: %d", r)
	}
	if e := time.Since(start); e < 40*time.Millisecond {
		t.Fatalf("gave up after %v", e)
	}
}

// openFDs counts this process's descriptors of memfds: those the probe
// received must all be closed again (the test's servers open none).
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fds {
		if l, err := os.Readlink(f); err == nil && strings.HasPrefix(l, "/memfd:") {
			n++
		}
	}
	return n
}
