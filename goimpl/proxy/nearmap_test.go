// SPDX-License-Identifier: Apache-2.0

package proxy_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/distcache-go/distcache/goimpl/nearmap"
	"github.com/distcache-go/distcache/goimpl/proto"
	"github.com/distcache-go/distcache/goimpl/proxy"
	"github.com/distcache-go/distcache/goimpl/store"
)

// probe GETs proto.NearMapID on c: the answer's payload and the
// descriptors that came with it.
func probe(t *testing.T, c *net.UnixConn) ([]byte, []int) {
	t.Helper()
	b, _ := proto.AppendMessage(nil, &proto.Message{UID: 7, Op: proto.OpGet, Payload: proto.NearMapID})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	var a proto.Assembler
	m, _, err := a.Decode(buf[:n])
	if err != nil || m == nil || !m.Response || m.UID != 7 || m.Op != proto.OpGet {
		t.Fatalf("answer %+v, %v", m, err)
	}
	var fds []int
	cms, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms {
		r, err := syscall.ParseUnixRights(&cm)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, r...)
	}
	return append([]byte(nil), m.Payload...), fds
}

func TestNearMapProbe(t *testing.T) {
	m, err := nearmap.New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := nearmap.Now()
	m.Reset(true)
	m.Renew(now + int64(nearmap.Lease))
	m.Put([]byte("id"), []byte("data"), now+int64(nearmap.Lease))
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: &echoStore{}}, NearMap: m})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*net.UnixConn)
	pay, fds := probe(t, c)
	if string(pay) != nearmap.ProbeAnswer || len(fds) != 1 {
		t.Fatalf("probe answered %q with %d descriptors", pay, len(fds))
	}
	defer syscall.Close(fds[0])
	var st syscall.Stat_t
	if err := syscall.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}
	b, err := syscall.Mmap(fds[0], 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	if got, ok := nearmap.Lookup(b, []byte("id"), now, nil); !ok || string(got) != "data" {
		t.Fatalf("the handed map: %q %v", got, ok)
	}
	// The connection goes on serving.
	rd := proto.NewReader(nc, proto.WantResponses)
	if a := roundTrip(t, nc, rd, 8, proto.OpGet, []byte("x")); string(a.Payload) != "ok:x" {
		t.Fatalf("after the probe: %q", a.Payload)
	}
}

// Without a map the probe is a miss that no store sees, and the id is
// never stored.
func TestNearMapProbeWithoutMap(t *testing.T) {
	st := &echoStore{}
	sock := start(t, proxy.Options{Handler: &store.Handler{Store: st}})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pay, fds := probe(t, nc.(*net.UnixConn))
	if len(pay) != 1 || pay[0] != proto.ResultNotOK || len(fds) != 0 {
		t.Fatalf("probe without a map: %q, %d descriptors", pay, len(fds))
	}
	rd := proto.NewReader(nc, proto.WantResponses)
	add := proto.AppendAddRequest(nil, 1000, proto.NearMapID, []byte("d"))
	if a := roundTrip(t, nc, rd, 9, proto.OpAdd, add); len(a.Payload) != 1 || a.Payload[0] != proto.AddErrIDRange {
		t.Fatalf("ADD of the reserved id: %q", a.Payload)
	}
	if a := roundTrip(t, nc, rd, 10, proto.OpGet, proto.NearMapID); len(a.Payload) != 1 || a.Payload[0] != proto.ResultNotOK {
		t.Fatalf("GET of the reserved id: %q", a.Payload)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.adds != 0 {
		t.Fatal("the store saw the reserved id")
	}
}
