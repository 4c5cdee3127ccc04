// SPDX-License-Identifier: Apache-2.0

package dcserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/store"
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

var bg = context.Background()

func inMap(b []byte, id string) (string, bool) {
	d, ok := nearmap.Lookup(b, []byte(id), nearmap.Now(), nil)
	return string(d), ok
}

// The map holds what the cache was given, loses what a REMOVE or a TAKE
// names before they are answered, and is left unread after Shutdown. A
// connection served by a goroutine is not handed the map.
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
		if loops < 0 {
			// served by goroutines, whose writes may wait: no map
			if b != nil || !bytes.Equal(pay, []byte{proto.ResultNotOK}) {
				t.Fatalf("from a goroutine the probe answered %q", pay)
			}
			continue
		}
		if b == nil || string(pay) != nearmap.ProbeAnswer {
			t.Fatalf("the probe answered %q without a map", pay)
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
		if d, ok := inMap(b, "a"); ok && d != "data-a" {
			t.Fatalf("a refused ADD put its data in the map: %q", d)
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

// After stopMap (a handover) the probe is a miss: the map is not read.
func TestNearMapNotHandedOnceStopped(t *testing.T) {
	m, err := nearmap.New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, sock := serveT(t, Options{Store: cache.New(cache.Config{}).Store(), NearMap: m})
	s.stopMap()
	if b, pay := probeMap(t, sock); b != nil || !bytes.Equal(pay, []byte{proto.ResultNotOK}) {
		t.Fatalf("after stopMap the probe answered %q", pay)
	}
}

// An ADD the store refuses takes from the map what it held for the id
// (a copy the cache dropped to make room, since added again).
func TestNearMapRefusedAddDropsTheEntry(t *testing.T) {
	m, err := nearmap.New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Reset(true)
	m.Renew(nearmap.Now() + int64(nearmap.Lease))
	c := cache.New(cache.Config{})
	ms := newMapStore(c.Store(), m)
	if err := c.Store().Add(bg, []byte("x"), []byte("the cache's"), time.Minute); err != nil {
		t.Fatal(err)
	}
	m.Put([]byte("x"), []byte("older"), nearmap.Now()+int64(time.Minute))
	if err := ms.Add(bg, []byte("x"), []byte("new"), time.Minute); err == nil {
		t.Fatal("a duplicate ADD stored")
	}
	if d, ok := inMap(m.Bytes(), "x"); ok {
		t.Fatalf("the map still answers %q", d)
	}
}

// slowAdds is a store whose ADD returns a while after it stored: the
// time a preempted ADD leaves between its change and its mirroring.
type slowAdds struct{ store.Store }

func (s slowAdds) Add(ctx context.Context, id, data []byte, ttl time.Duration) error {
	err := s.Store.Add(ctx, id, data, ttl)
	time.Sleep(20 * time.Microsecond)
	return err
}

// Concurrent ADDs, REMOVEs and TAKEs of a few ids: afterwards the map
// holds no session the cache does not, nor other data.
func TestNearMapFollowsConcurrentChanges(t *testing.T) {
	m, err := nearmap.New(64)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Reset(true)
	m.Renew(nearmap.Now() + int64(time.Hour))
	c := cache.New(cache.Config{})
	ms := newMapStore(slowAdds{c.Store()}, m)
	ids := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				id := []byte(ids[(g+i)%len(ids)])
				switch (g*7 + i) % 3 {
				case 0:
					ms.Add(bg, id, fmt.Appendf(nil, "%d-%d", g, i), time.Minute)
				case 1:
					ms.Remove(bg, id)
				default:
					ms.Take(bg, id, nil)
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		md, inM := inMap(m.Bytes(), id)
		cd, err := c.Store().Get(bg, []byte(id), nil)
		if inM && (err != nil || string(cd) != md) {
			t.Fatalf("%s: the map has %q, the cache %q (%v)", id, md, cd, err)
		}
	}
}
